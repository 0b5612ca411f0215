using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The resume message through the FIFO, carrying the manifest's canary and the weight holder found by Validate, and the
/// listening socket handed over; the engine re-acquires its weights (from the holder or its files) and KV cache,
/// answers the canary and compares it, and only then binds and writes ready.json. A failure here is the engine's
/// (ResumeFailed with its own reason, CanaryMismatch), not CRIU's.
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

        var terms = new ResumeTerms(expected, context.Options.SkipCanary || expected is null, context.Request.WeightHolder?.Socket);
        var ready = await context.Services.Engines.ResumeThroughAsync(context.Record, context.Fifo!, terms, context.Options.Timeout, cancellationToken).ConfigureAwait(false);
        if (ready.WeightsFrom is { } weightsFrom)
        {
            context.Observer.Verbose($"Replica {context.Record.Name} took its weights from {(weightsFrom == "holder" ? $"weight holder {context.Request.WeightHolder?.Name}" : "the model's files")}.");
        }

        var elapsed = context.Services.Clock.GetElapsedTime(started);
        // The engine's own figure for the canary, which it answered within the resume: taken out of the resume's.
        var answered = ready.Phases.TryGetValue(CanaryPhase, out var seconds) && double.IsFinite(seconds) && seconds > 0 ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;
        context.Timings.Add("resume", elapsed > answered ? elapsed - answered : TimeSpan.Zero);
        context.Timings.Add("canary", answered);
        return StepOutcome.Continue;
    }
}
