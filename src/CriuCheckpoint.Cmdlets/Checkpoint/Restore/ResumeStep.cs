namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The resume message through the FIFO and the listening socket handed over; the engine re-acquires its KV cache,
/// binds and writes ready.json. A failure here is the engine's (ResumeFailed with its own reason), not CRIU's.
/// </summary>
internal sealed class ResumeStep : IStep<RestoreContext>
{
    public string Name => "Resume";

    public int PercentAtStart => 70;

    public string Describe(RestoreContext context) => "Resuming the engine";

    public async Task<StepOutcome> RunAsync(RestoreContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        await context.Services.Engines.ResumeThroughAsync(context.Record, context.Fifo!, context.Options.Timeout, cancellationToken).ConfigureAwait(false);
        context.Timings.Add("resume", context.Services.Clock.GetElapsedTime(started));
        return StepOutcome.Continue;
    }
}
