using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using MessagePack;
using NetMQ.Sockets;
using NetMQ;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The link against a real NetMQ ROUTER standing in for the engine's socket.</summary>
public sealed class EngineLinkTests : IDisposable
{
    private readonly RouterSocket router = new();
    private readonly string endpoint;

    public EngineLinkTests()
    {
        var port = router.BindRandomPort("tcp://127.0.0.1");
        endpoint = $"tcp://127.0.0.1:{port}";
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
        using var link = new EngineLink(endpoint);
        var first = link.Send("health");
        var second = link.Send("health");
        var a = Receive();
        var b = Receive();

        Reply(b.Identity, new() { ["v"] = 1, ["id"] = b.Request["id"], ["kind"] = "final", ["state"] = "second" });
        Reply(a.Identity, new() { ["v"] = 1, ["id"] = a.Request["id"], ["kind"] = "final", ["state"] = "first" });

        var secondReply = await link.NextReplyAsync(second, TimeSpan.FromSeconds(5), CancellationToken.None);
        var firstReply = await link.NextReplyAsync(first, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal("first", firstReply.Read<HealthReply>().State);
        Assert.Equal("second", secondReply.Read<HealthReply>().State);
        Assert.NotEqual(first.Id, second.Id);
    }

    [Fact]
    public async Task StreamsChunksBeforeTheFinalReply()
    {
        using var link = new EngineLink(endpoint);
        var request = link.Send(LinkProtocol.Ops.Generate, new GenerateArgs { Prompt = "x", Stream = true });
        var (identity, sent) = Receive();
        Assert.Equal("generate", sent["op"]);
        Reply(identity, new() { ["v"] = 1, ["id"] = sent["id"], ["kind"] = "chunk", ["text"] = "a", ["token_ids"] = new[] { 97 } });
        Reply(identity, new() { ["v"] = 1, ["id"] = sent["id"], ["kind"] = "chunk", ["text"] = "b", ["token_ids"] = new[] { 98 } });
        Reply(identity, new() { ["v"] = 1, ["id"] = sent["id"], ["kind"] = "final", ["text"] = "ab", ["finish_reason"] = "length" });

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
        using var link = new EngineLink(endpoint);
        var call = link.CallAsync<HealthReply>("bogus", TimeSpan.FromSeconds(5), CancellationToken.None);
        var (identity, sent) = Receive();
        Reply(identity, new() { ["v"] = 1, ["id"] = sent["id"], ["kind"] = "error", ["code"] = "unknown_op", ["message"] = "no such op" });

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => call);
        Assert.Equal(ErrorIds.ProtocolMismatch, failure.ErrorId);
    }

    [Fact]
    public async Task AnUnansweredRequestTimesOutWithLinkTimeout()
    {
        using var link = new EngineLink(endpoint);

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            link.CallAsync<HealthReply>("health", TimeSpan.FromMilliseconds(300), CancellationToken.None));

        Assert.Equal(ErrorIds.LinkTimeout, failure.ErrorId);
        Assert.Equal(FailureKind.OperationTimeout, failure.Kind);
    }

    [Fact]
    public async Task ADeadEngineEndsTheWaitWithEngineDied()
    {
        var alive = true;
        using var link = new EngineLink(endpoint, () => alive);
        var call = link.CallAsync<HealthReply>("health", TimeSpan.FromSeconds(30), CancellationToken.None);
        alive = false;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => call);
        Assert.Equal(ErrorIds.EngineDied, failure.ErrorId);
    }

    [Fact]
    public async Task CancellationEndsTheWaitPromptly()
    {
        using var link = new EngineLink(endpoint);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            link.CallAsync<HealthReply>("health", TimeSpan.FromSeconds(30), cancel.Token));
    }
}
