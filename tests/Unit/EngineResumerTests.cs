using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Link;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>What a refused prepare_checkpoint becomes: the engine's reason kept, the engine named, and it serves on.</summary>
public sealed class EngineResumerTests
{
    private static readonly EngineRecord Record = new() { Name = "tp2" };

    private static CriuCheckpointException Refusal(string code, string message)
    {
        var request = new LinkRequest("r-1", LinkProtocol.Ops.PrepareCheckpoint, System.Threading.Channels.Channel.CreateUnbounded<LinkReply>().Reader);
        return EngineLink.ToException(request, new ReplyHeader { Id = "r-1", Kind = "error", Code = code, Message = message });
    }

    [Fact]
    public void AnEngineThatNoCheckpointCanCarryIsCheckpointUnsupported()
    {
        var refusal = Refusal("checkpoint_unsupported", "this vLLM engine spans several GPUs (tensor_parallel_size 2); the engine serves on");

        var failure = EngineResumer.PrepareFailure(Record, refusal, "log tail");

        Assert.Equal(ErrorIds.CheckpointUnsupported, failure.ErrorId);
        Assert.Equal(FailureKind.NotImplemented, failure.Kind);
        Assert.Equal("tp2", failure.Target);
        Assert.StartsWith("Engine tp2 cannot be checkpointed: ", failure.Message, StringComparison.Ordinal);
        Assert.Contains("tensor_parallel_size 2", failure.Message);
        Assert.Same(refusal, failure.InnerException);
    }

    [Theory]
    [InlineData("engine_error")]
    [InlineData("not_ready")]
    public void AnyOtherRefusalIsCheckpointPrepareFailedWithTheEnginesLog(string code)
    {
        var failure = EngineResumer.PrepareFailure(Record, Refusal(code, "sleep failed"), "log tail");

        Assert.Equal(ErrorIds.CheckpointPrepareFailed, failure.ErrorId);
        Assert.Equal(FailureKind.InvalidOperation, failure.Kind);
        Assert.Contains("could not prepare for a checkpoint", failure.Message);
        Assert.Contains("sleep failed", failure.Message);
        Assert.Equal("log tail", failure.Details);
    }
}
