using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Link;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Generates completions. Every prompt that arrives is submitted at once, so the engine batches them; each result
/// (or, with -Stream, each chunk) is written as it arrives. Ctrl+C aborts the requests still in flight.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "EngineGenerate", DefaultParameterSetName = ByEngine)]
[OutputType(typeof(GenerationResult))]
[OutputType(typeof(GenerationChunk))]
public sealed class InvokeEngineGenerateCommand : OneEngineCmdlet
{
    private readonly Dictionary<string, (EngineLink Link, GenerationClient Client)> clients = new();
    private readonly List<Task> requests = new();
    private EngineIdentity? resolvedIdentity;
    private EngineInfo? resolvedEngine;

    /// <summary>The engine: an Engine object, or its name or id.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByEngine)]
    [Alias("EngineName", "Name")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNull]
    [SupportsWildcards]
    public EngineIdentity Engine { get; set; } = null!;


    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNull]
    public string[] Prompt { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateRange(1, 1_000_000)]
    public int MaxTokens { get; set; } = 16;

    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public double Temperature { get; set; }

    [Parameter]
    [ValidateRange(0.000001, 1.0)]
    public double TopP { get; set; } = 1.0;

    [Parameter]
    public long? Seed { get; set; }

    [Parameter]
    [ValidateNotNull]
    public string[] Stop { get; set; } = Array.Empty<string>();

    [Parameter]
    public SwitchParameter Stream { get; set; }

    /// <summary>Seconds to wait for each reply of the engine (the first token, or the next chunk) before giving up.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 300;

    protected override void ProcessRecord()
    {
        if (EngineOf(GivenEngine(Engine)) is { } engine)
        {
            Submit(engine);
        }

        WriteQueued();
    }

    protected override void EndProcessing()
    {
        // Every request is in flight already: write what they output as it arrives, until the last one ends.
        Run((_, _) => Task.WhenAll(requests));
        base.EndProcessing();
    }

    protected override void StopProcessing()
    {
        base.StopProcessing();
        // Give the abort messages of cancelled requests their moment on the wire before the links close.
        Task.WaitAll(requests.ToArray(), TimeSpan.FromSeconds(2));
    }

    /// <summary>
    /// The engine -Engine or -Id names. Prompts piped to an engine named on the command line share its one lookup, so
    /// an unknown name is reported once rather than once per prompt.
    /// </summary>
    private EngineInfo? EngineOf((EngineIdentity Identity, EngineKey Key) given)
    {
        if (!ReferenceEquals(given.Identity, resolvedIdentity))
        {
            resolvedIdentity = given.Identity;
            resolvedEngine = ResolveEngine(given.Identity, given.Key);
        }

        return resolvedEngine;
    }

    private void Submit(EngineInfo engine)
    {
        try
        {
            var client = ClientFor(engine);
            var options = new GenerationOptions
            {
                MaxTokens = MaxTokens,
                Temperature = Temperature,
                TopP = TopP,
                Seed = Seed,
                Stop = Stop,
                Stream = Stream.IsPresent,
            };
            requests.AddRange(Prompt.Select(prompt => Generate(client, prompt, options)));
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }

    private Task Generate(GenerationClient client, string prompt, GenerationOptions options) => Task.Run(async () =>
    {
        try
        {
            var result = await client.GenerateAsync(prompt, options, PostObject, TimeSpan.FromSeconds(TimeoutSec),
                CancellationToken).ConfigureAwait(false);
            if (!options.Stream)
            {
                PostObject(result);
            }
        }
        catch (CriuCheckpointException e)
        {
            PostFailure(e);
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C: the request was aborted on the engine; the pipeline is stopping and wants no output.
        }
    });

    private GenerationClient ClientFor(EngineInfo engine)
    {
        if (!clients.TryGetValue(engine.Id, out var entry))
        {
            var link = new EngineInspector(Registry).Connect(engine.Record);
            entry = (link, new GenerationClient(link, engine));
            clients[engine.Id] = entry;
        }

        return entry.Client;
    }

    protected override void Dispose(bool disposing)
    {
        foreach (var (link, _) in clients.Values)
        {
            link.Dispose();
        }

        base.Dispose(disposing);
    }
}
