using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using CliWrap;
using CriuCheckpoint.Link;
using MessagePack;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// The link's messages as the module defines them (LinkMessages.cs) against the engine's own protocol.py: every
/// request the module writes is read back by parse_request, and every reply the engine can send is read by the
/// module's reader types, field by field. An op, reply or field that one side lacks fails here.
/// </summary>
public sealed class LinkCrossLanguageTests : IClassFixture<LinkCrossLanguageTests.PythonSide>
{
    private const string ReplyId = "r-42";

    // Before Requests: static fields are initialised in order, and Requests are serialised with these.
    private static readonly MessagePackSerializerOptions Options = LinkProtocol.SerializerOptions;

    /// <summary>The module's reader for each reply type of protocol.py. Null: shutdown's final, which has no fields.</summary>
    private static readonly Dictionary<string, Type?> Readers = new()
    {
        ["HelloResult"] = typeof(HelloReply),
        ["HealthResult"] = typeof(HealthReply),
        ["GenerateChunk"] = typeof(GenerateChunkReply),
        ["GenerateResult"] = typeof(GenerateFinalReply),
        ["PrepareCheckpointResult"] = typeof(PrepareCheckpointReply),
        ["ErrorResult"] = typeof(ReplyHeader),
        ["AbortResult"] = typeof(AbortReply),
        ["EmptyResult"] = null,
    };

    /// <summary>Requests as the module writes them (EngineLink.Send), with the values a user would give.</summary>
    private static readonly IReadOnlyList<ModuleRequest> Requests =
    [
        ModuleRequest.Of(LinkProtocol.Ops.Hello, NoArgs()),
        ModuleRequest.Of(LinkProtocol.Ops.Health, NoArgs()),
        ModuleRequest.Of(LinkProtocol.Ops.Generate, new GenerateArgs
        {
            Prompt = "Once upon a time, é",
            MaxTokens = 32,
            Temperature = 0.7,
            TopP = 0.9,
            Seed = 1_234_567_890_123,
            Stop = ["\n\n", "The end"],
            Stream = true,
        }),
        ModuleRequest.Of(LinkProtocol.Ops.Generate, new GenerateArgs { Prompt = "Hello" }),
        ModuleRequest.Of(LinkProtocol.Ops.Abort, new AbortArgs { RequestId = "5f2a9c1e-7" }),
        ModuleRequest.Of(LinkProtocol.Ops.PrepareCheckpoint, new PrepareCheckpointArgs { DrainTimeoutSeconds = 12.5, AbortInFlight = true, KeepCaches = true }),
        ModuleRequest.Of(LinkProtocol.Ops.Shutdown, NoArgs()),
    ];

    private readonly PythonSide python;

    public LinkCrossLanguageTests(PythonSide python) => this.python = python;

    public static TheoryData<string> PythonReplyTypes() => new(Readers.Keys);

    public static TheoryData<int, string> RequestIndexes()
    {
        var data = new TheoryData<int, string>();
        foreach (var (request, index) in Requests.Select((r, i) => (r, i)))
        {
            data.Add(index, request.Op);
        }

        return data;
    }

    private static IReadOnlyDictionary<string, object?> NoArgs() => new Dictionary<string, object?>();

    private static IEnumerable<string> Constants(Type type) =>
        type.GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!);

    private static IEnumerable<PropertyInfo> WireProperties(Type type) =>
        type.GetProperties().Where(p => p.GetCustomAttribute<KeyAttribute>() is not null);

    private static string WireName(PropertyInfo property) => property.GetCustomAttribute<KeyAttribute>()!.StringKey!;

    private static IEnumerable<(object Key, object? Value)> Entries(IDictionary map)
    {
        var entry = map.GetEnumerator();
        while (entry.MoveNext())
        {
            yield return (entry.Key, entry.Value);
        }
    }

    private static Dictionary<string, object?> Map(object? value) => Entries((IDictionary)value!).ToDictionary(e => (string)e.Key, e => e.Value);

    private static Dictionary<string, object?> Decode(byte[] payload) => Map(MessagePackSerializer.Deserialize<object>(payload, Options));

    /// <summary>A value as it is on the wire, in one form for both sides: numbers as decimals, maps by key.</summary>
    private static string Canonical(object? value) => JsonSerializer.Serialize(Normalize(value));

    private static object? Normalize(object? value) => value switch
    {
        null or string or bool => value,
        byte[] bytes => Convert.ToBase64String(bytes),
        IDictionary map => new SortedDictionary<string, object?>(
            Entries(map).ToDictionary(e => Convert.ToString(e.Key, CultureInfo.InvariantCulture)!, e => Normalize(e.Value)), StringComparer.Ordinal),
        IEnumerable items => items.Cast<object?>().Select(Normalize).ToList(),
        IConvertible number => Convert.ToDecimal(number, CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"Unexpected wire value of type {value.GetType()}."),
    };

    /// <summary>What the module's property holds, written and read back through MessagePack as the wire has it.</summary>
    private static string CanonicalProperty(PropertyInfo property, object instance)
    {
        var bytes = MessagePackSerializer.Serialize(property.PropertyType, property.GetValue(instance), Options);
        return Canonical(MessagePackSerializer.Deserialize<object>(bytes, Options));
    }

    [Fact]
    public void BothSidesSpeakTheSameProtocolVersion()
    {
        Assert.Equal(LinkProtocol.Version, python.Version);
    }

    [Fact]
    public void TheModuleSendsEveryOpTheEngineParsesAndNoOther()
    {
        Assert.Equal(python.Ops.Order(), Constants(typeof(LinkProtocol.Ops)).Order());
        Assert.Equal(python.Ops.Order(), Requests.Select(r => r.Op).Distinct().Order());
    }

    [Fact]
    public void TheModuleKnowsEveryErrorCodeTheEngineSends()
    {
        Assert.Equal(python.ErrorCodes.Order(), Constants(typeof(LinkProtocol.Codes)).Order());
    }

    [Fact]
    public void EveryReplyTheEngineCanSendHasAReaderInTheModuleAndEveryReaderAReply()
    {
        Assert.Equal(python.Replies.Keys.Order(), Readers.Keys.Order());
        var readers = Readers.Values.OfType<Type>().ToHashSet();
        var moduleReplies = typeof(ReplyHeader).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(ReplyHeader).Namespace && t.GetCustomAttribute<MessagePackObjectAttribute>() is not null)
            .Where(t => t == typeof(ReplyHeader) || t.Name.EndsWith("Reply", StringComparison.Ordinal));
        Assert.All(moduleReplies, t => Assert.True(readers.Contains(t), $"{t.Name} reads no reply the engine sends."));
    }

    [Fact]
    public void EveryArgumentTypeOfTheModuleIsSentByARequestHere()
    {
        var sent = Requests.Select(r => r.ArgsType).ToHashSet();
        var argumentTypes = typeof(GenerateArgs).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(GenerateArgs).Namespace && t.GetCustomAttribute<MessagePackObjectAttribute>() is not null)
            .Where(t => t.Name.EndsWith("Args", StringComparison.Ordinal));
        Assert.All(argumentTypes, t => Assert.True(sent.Contains(t), $"No request here sends {t.Name}."));
    }

    [Theory]
    [MemberData(nameof(RequestIndexes))]
    public void TheEngineReadsEachRequestFieldByField(int index, string op)
    {
        var request = Requests[index];
        var understood = python.Understood[index];

        Assert.False(understood.ContainsKey("error"), $"{op}: protocol.py refused it: {understood.GetValueOrDefault("error")}: {understood.GetValueOrDefault("message")}");
        Assert.Equal(request.Id, understood["id"]);
        Assert.Equal(op, understood["op"]);
        var sent = Map(Decode(request.Payload)["args"]);
        var read = Map(understood["args"]);
        Assert.All(sent, field =>
        {
            Assert.True(read.ContainsKey(field.Key), $"{op}: protocol.py has no argument '{field.Key}'.");
            Assert.Equal(Canonical(field.Value), Canonical(read[field.Key]));
        });
    }

    [Theory]
    [MemberData(nameof(PythonReplyTypes))]
    public void TheModuleReadsEachReplyFieldByField(string pythonType)
    {
        var payload = python.Replies[pythonType];
        var wire = Decode(payload);
        var header = MessagePackSerializer.Deserialize<ReplyHeader>(payload, Options);
        var reader = Readers[pythonType];

        Assert.Equal(LinkProtocol.Version, header.Version);
        Assert.Equal(ReplyId, header.Id);
        Assert.Equal(reader != typeof(GenerateChunkReply), new LinkReply(header, payload).IsFinal);
        Assert.Equal(reader == typeof(ReplyHeader), new LinkReply(header, payload).IsError);
        if (reader is null)
        {
            return;
        }

        var read = MessagePackSerializer.Deserialize(reader, payload, Options)!;
        Assert.All(WireProperties(reader), property =>
        {
            Assert.True(wire.ContainsKey(WireName(property)), $"{reader.Name}.{property.Name} reads '{WireName(property)}', which {pythonType} does not send.");
            Assert.Equal(Canonical(wire[WireName(property)]), CanonicalProperty(property, read));
        });
    }

    private sealed record ModuleRequest(string Id, string Op, Type ArgsType, byte[] Payload)
    {
        private static int count;

        public static ModuleRequest Of<TArgs>(string op, TArgs args)
        {
            var id = $"5f2a9c1e-{Interlocked.Increment(ref count)}";
            var envelope = new RequestEnvelope<TArgs> { Id = id, Op = op, Args = args };
            return new ModuleRequest(id, op, typeof(TArgs), MessagePackSerializer.Serialize(envelope, Options));
        }
    }

    /// <summary>tests/Unit/link_cross_language.py run once: what protocol.py sends, and what it read of <see cref="Requests"/>.</summary>
    public sealed class PythonSide
    {
        public PythonSide()
        {
            var description = Decode(Run("describe", null));
            Version = Convert.ToInt32(description["version"], CultureInfo.InvariantCulture);
            Ops = ((object[])description["ops"]!).Cast<string>().ToList();
            ErrorCodes = ((object[])description["error_codes"]!).Cast<string>().ToList();
            Replies = ((object[])description["replies"]!).Select(Map).ToDictionary(r => (string)r["type"]!, r => (byte[])r["payload"]!);
            var payloads = MessagePackSerializer.Serialize(Requests.Select(r => r.Payload).ToArray(), Options);
            Understood = ((object[])MessagePackSerializer.Deserialize<object>(Run("parse", payloads), Options)).Select(Map).ToList();
        }

        public int Version { get; }

        public IReadOnlyList<string> Ops { get; }

        public IReadOnlyList<string> ErrorCodes { get; }

        public IReadOnlyDictionary<string, byte[]> Replies { get; }

        public IReadOnlyList<Dictionary<string, object?>> Understood { get; }

        private static byte[] Run(string mode, byte[]? input)
        {
            using var stdout = new MemoryStream();
            var stderr = new System.Text.StringBuilder();
            var result = Cli.Wrap(TestPython.Path)
                .WithArguments([Path.Combine(TestPython.RepositoryRoot, "tests/Unit/link_cross_language.py"), mode])
                .WithEnvironmentVariables(TestPython.ScriptEnvironment)
                .WithStandardInputPipe(input is null ? PipeSource.Null : PipeSource.FromBytes(input))
                .WithStandardOutputPipe(PipeTarget.ToStream(stdout))
                .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync().GetAwaiter().GetResult();
            return result.ExitCode == 0 ? stdout.ToArray()
                : throw new InvalidOperationException($"link_cross_language.py {mode} exited with {result.ExitCode}: {stderr}");
        }
    }
}
