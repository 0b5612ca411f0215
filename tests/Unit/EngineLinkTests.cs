using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using MessagePack;
using NetMQ.Sockets;
using NetMQ;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The link against a real NetMQ ROUTER, a CURVE server as the engine's socket is, standing in for the engine.</summary>
public sealed class EngineLinkTests : IDisposable
{
    private readonly RouterSocket router = new();
    private readonly string endpoint;
    private readonly CurveKeyPair server = CurveKeyPair.New();
    private readonly LinkKeys keys;

    public EngineLinkTests()
    {
        router.Options.CurveServer = true;
        router.Options.CurveCertificate = NetMQCertificate.CreateFromSecretKey(server.SecretKey);
        var port = router.BindRandomPort("tcp://127.0.0.1");
        endpoint = $"tcp://127.0.0.1:{port}";
        keys = new LinkKeys(server.PublicKey, CurveKeyPair.New().SecretKey);
    }

    public void Dispose() => router.Dispose();

    private (byte[] Identity, Dictionary<object, object> Request) Receive()
    {
        var message = router.ReceiveMultipartMessage();
        var request = (Dictionary<object, object>)MessagePackSerializer.Deserialize<object>(message.Last.ToByteArray(), LinkProtocol.SerializerOptions);
        return (message.First.ToByteArray(), request);
    }

    private void Reply(byte[] identity, Dictionary<string, object?> reply)
    {
        var message = new NetMQMessage();
        message.Append(identity);
        message.AppendEmptyFrame();
        message.Append(MessagePackSerializer.Serialize(reply, LinkProtocol.SerializerOptions));
        router.SendMultipartMessage(message);
    }

    [Fact]
    public async Task RoutesRepliesToTheirRequestsWhateverTheOrder()
    {
        using var link = new EngineLink(endpoint, keys);
        var first = link.Send("health");
        var second = link.Send("health");
        var a = Receive();
        var b = Receive();

        Reply(b.Identity, new() { ["v"] = LinkProtocol.Version, ["id"] = b.Request["id"], ["kind"] = "final", ["state"] = "second" });
        Reply(a.Identity, new() { ["v"] = LinkProtocol.Version, ["id"] = a.Request["id"], ["kind"] = "final", ["state"] = "first" });

        var secondReply = await link.NextReplyAsync(second, TimeSpan.FromSeconds(5), CancellationToken.None);
        var firstReply = await link.NextReplyAsync(first, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal("first", firstReply.Read<HealthReply>().State);
        Assert.Equal("second", secondReply.Read<HealthReply>().State);
        Assert.NotEqual(first.Id, second.Id);
    }

    [Fact]
    public async Task StreamsChunksBeforeTheFinalReply()
    {
        using var link = new EngineLink(endpoint, keys);
        var request = link.Send(LinkProtocol.Ops.Generate, new GenerateArgs { Prompt = "x", Stream = true });
        var (identity, sent) = Receive();
        Assert.Equal("generate", sent["op"]);
        Reply(identity, new() { ["v"] = LinkProtocol.Version, ["id"] = sent["id"], ["kind"] = "chunk", ["text"] = "a", ["token_ids"] = new[] { 97 } });
        Reply(identity, new() { ["v"] = LinkProtocol.Version, ["id"] = sent["id"], ["kind"] = "chunk", ["text"] = "b", ["token_ids"] = new[] { 98 } });
        Reply(identity, new() { ["v"] = LinkProtocol.Version, ["id"] = sent["id"], ["kind"] = "final", ["text"] = "ab", ["finish_reason"] = "length" });

        var texts = new List<string>();
        LinkReply reply;
        do
        {
            reply = await link.NextReplyAsync(request, TimeSpan.FromSeconds(5), CancellationToken.None);
            texts.Add(reply.IsFinal ? reply.Read<GenerateFinalReply>().Text : reply.Read<GenerateChunkReply>().Text);
        }
        while (!reply.IsFinal);

        Assert.Equal(new[] { "a", "b", "ab" }, texts);
    }

    [Fact]
    public async Task ErrorRepliesThrowWithTheirErrorId()
    {
        using var link = new EngineLink(endpoint, keys);
        var call = link.CallAsync<HealthReply>("bogus", TimeSpan.FromSeconds(5), CancellationToken.None);
        var (identity, sent) = Receive();
        Reply(identity, new() { ["v"] = LinkProtocol.Version, ["id"] = sent["id"], ["kind"] = "error", ["code"] = "unknown_op", ["message"] = "no such op" });

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => call);
        Assert.Equal(ErrorIds.ProtocolMismatch, failure.ErrorId);
    }

    [Fact]
    public async Task AnUnansweredRequestTimesOutWithLinkTimeout()
    {
        using var link = new EngineLink(endpoint, keys);

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            link.CallAsync<HealthReply>("health", TimeSpan.FromMilliseconds(300), CancellationToken.None));

        Assert.Equal(ErrorIds.LinkTimeout, failure.ErrorId);
        Assert.Equal(FailureKind.OperationTimeout, failure.Kind);
    }

    [Fact]
    public async Task ALinkWithAnotherServerKeyIsNeverAnswered()
    {
        using var link = new EngineLink(endpoint, new LinkKeys(CurveKeyPair.New().PublicKey, CurveKeyPair.New().SecretKey));
        var call = link.CallAsync<HealthReply>("health", TimeSpan.FromMilliseconds(800), CancellationToken.None);

        NetMQMessage? received = null;
        Assert.False(router.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(500), ref received));
        Assert.Equal(ErrorIds.LinkTimeout, (await Assert.ThrowsAsync<CriuCheckpointException>(() => call)).ErrorId);
    }

    [Fact]
    public async Task ADeadEngineEndsTheWaitWithEngineDied()
    {
        var alive = true;
        using var link = new EngineLink(endpoint, keys, () => alive);
        var call = link.CallAsync<HealthReply>("health", TimeSpan.FromSeconds(30), CancellationToken.None);
        alive = false;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => call);
        Assert.Equal(ErrorIds.EngineDied, failure.ErrorId);
    }

    [Fact]
    public async Task CancellationEndsTheWaitPromptly()
    {
        using var link = new EngineLink(endpoint, keys);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            link.CallAsync<HealthReply>("health", TimeSpan.FromSeconds(30), cancel.Token));
    }
}
