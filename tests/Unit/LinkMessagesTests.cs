using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using MessagePack;
using Xunit;

namespace CriuCheckpoint.Tests;

public class LinkMessagesTests
{
    [Fact]
    public void RequestEnvelopeUsesTheWireNamesOfTheProtocol()
    {
        var envelope = new RequestEnvelope<GenerateArgs>
        {
            Id = "r-1",
            Op = LinkProtocol.Ops.Generate,
            Args = new GenerateArgs { Prompt = "hi", MaxTokens = 4, Seed = 7, Stop = new[] { "\n" }, Stream = true },
        };

        var bytes = MessagePackSerializer.Serialize(envelope, LinkProtocol.SerializerOptions);
        var map = (Dictionary<object, object>)MessagePackSerializer.Deserialize<object>(bytes, LinkProtocol.SerializerOptions);

        Assert.Equal(new[] { "args", "id", "op", "v" }, map.Keys.Cast<string>().Order());
        Assert.Equal((byte)2, Convert.ToByte(map["v"]));
        var args = (Dictionary<object, object>)map["args"];
        Assert.Equal("hi", args["prompt"]);
        Assert.Equal(4, Convert.ToInt32(args["max_tokens"]));
        Assert.Equal(7, Convert.ToInt64(args["seed"]));
        Assert.Equal(true, args["stream"]);
        Assert.Equal(new object[] { "\n" }, (object[])args["stop"]);
    }

    [Fact]
    public void ReplyReadersSkipKeysTheyDoNotKnow()
    {
        var reply = new Dictionary<string, object?>
        {
            ["v"] = LinkProtocol.Version,
            ["id"] = "r-9",
            ["kind"] = "final",
            ["text"] = "abc",
            ["token_ids"] = new[] { 97, 98, 99 },
            ["finish_reason"] = "length",
            ["prompt_tokens"] = 2,
            ["completion_tokens"] = 3,
            ["ttft_s"] = 0,
            ["duration_s"] = 0.25,
            ["a_field_from_a_newer_engine"] = new Dictionary<string, object?> { ["x"] = 1 },
        };
        var bytes = MessagePackSerializer.Serialize(reply, LinkProtocol.SerializerOptions);

        var header = MessagePackSerializer.Deserialize<ReplyHeader>(bytes, LinkProtocol.SerializerOptions);
        var final = new LinkReply(header, bytes).Read<GenerateFinalReply>();

        Assert.Equal("r-9", header.Id);
        Assert.True(new LinkReply(header, bytes).IsFinal);
        Assert.Equal("abc", final.Text);
        Assert.Equal(new[] { 97, 98, 99 }, final.TokenIds);
        Assert.Equal(0.0, final.TimeToFirstTokenSeconds);
        Assert.Equal(0.25, final.DurationSeconds);
    }

    [Theory]
    [InlineData("not_ready", ErrorIds.EngineNotReady)]
    [InlineData("bad_request", ErrorIds.EngineRequestRejected)]
    [InlineData("prompt_too_long", ErrorIds.EngineRequestRejected)]
    [InlineData("unknown_op", ErrorIds.ProtocolMismatch)]
    [InlineData("unsupported_version", ErrorIds.ProtocolMismatch)]
    [InlineData("engine_error", ErrorIds.EngineRequestFailed)]
    [InlineData("checkpoint_unsupported", ErrorIds.CheckpointUnsupported)]
    [InlineData("something_new", ErrorIds.EngineRequestFailed)]
    public void ErrorRepliesMapToStableErrorIds(string code, string errorId)
    {
        var request = new LinkRequest("r-1", "generate", System.Threading.Channels.Channel.CreateUnbounded<LinkReply>().Reader);

        var failure = EngineLink.ToException(request, new ReplyHeader { Id = "r-1", Kind = "error", Code = code, Message = "why" });

        Assert.Equal(errorId, failure.ErrorId);
        Assert.Contains("why", failure.Message);
        Assert.Contains(code, failure.Message);
    }
}
