using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The resume message through the FIFO, carrying the manifest's canary, and the listening socket handed over; the
/// engine re-acquires its KV cache, answers the canary and compares it, and only then binds and writes ready.json. A
/// failure here is the engine's (ResumeFailed with its own reason, CanaryMismatch), not CRIU's.
/// </summary>
internal sealed class ResumeStep : IStep<RestoreContext>
{
    /// <summary>The engine's phase (ready.json) for answering and comparing its canary.</summary>
    public const string CanaryPhase = "resume_canary";

    public string Name => "Resume";

    public int PercentAtStart => 70;

    public string Describe(RestoreContext context) => "Resuming the engine";

    public async Task<StepOutcome> RunAsync(RestoreContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var expected = context.Manifest.Canary;
        if (expected is null && !context.Options.SkipCanary)
        {
            context.Observer.Verbose($"Checkpoint {context.Checkpoint.Path} recorded no canary (saved with -SkipCanary): {context.Describe} serves unchecked.");
        }

        var canary = new CanaryCheck(expected, context.Options.SkipCanary || expected is null);
        var ready = await context.Services.Engines.ResumeThroughAsync(context.Record, context.Fifo!, canary, context.Options.Timeout, cancellationToken).ConfigureAwait(false);
        var elapsed = context.Services.Clock.GetElapsedTime(started);
        // The engine's own figure for the canary, which it answered within the resume: taken out of the resume's.
        var answered = ready.Phases.TryGetValue(CanaryPhase, out var seconds) && double.IsFinite(seconds) && seconds > 0 ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;
        context.Timings.Add("resume", elapsed > answered ? elapsed - answered : TimeSpan.Zero);
        context.Timings.Add("canary", answered);
        return StepOutcome.Continue;
    }
}
