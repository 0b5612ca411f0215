using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>The restored engine answers hello over its link: only then is it a replica.</summary>
internal sealed class VerifyStep : IStep<RestoreContext>
{
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(15);

    public string Name => "Verify";

    public int PercentAtStart => 90;

    public string Describe(RestoreContext context) => "Saying hello over the link";

    public async Task<StepOutcome> RunAsync(RestoreContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var info = await context.Services.Engines.DescribeAsync(context.Record, HelloTimeout, cancellationToken).ConfigureAwait(false);
        context.Timings.Add("hello", context.Services.Clock.GetElapsedTime(started));
        if (info.State != EngineState.Ready)
        {
            throw new CriuCheckpointException(ErrorIds.ResumeFailed, FailureKind.InvalidOperation,
                $"Replica {context.Record.Name} resumed but does not answer on {info.Endpoint} (state {info.State}).", context.Record.Name,
                details: new RunDirectory(context.Record.RunDirectory).LogTail());
        }

        context.Engine = info;
        return StepOutcome.Continue;
    }
}
