using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Asks the engine to prepare: it drains, releases what must not be saved (its KV cache), closes its sockets and blocks
/// on its resume FIFO. Undone by resuming it, so a failed save never leaves an engine blocked.
/// </summary>
internal sealed class PrepareStep : IStep<SaveContext>
{
    public const string Compensation = "resume the engine";
    private static readonly TimeSpan ResumeTimeout = TimeSpan.FromSeconds(60);

    public string Name => "Prepare";

    public int PercentAtStart => 10;

    public string Describe(SaveContext context) =>
        context.Options.KeepCaches ? "Preparing the engine (drain, close sockets)" : "Preparing the engine (drain, release caches, close sockets)";

    public async Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var engines = context.Services.Engines;
        var record = context.Record;
        rollback.Push(Compensation, () => ResumeIfPreparedAsync(context));
        var options = context.Options;
        var outcome = await engines.PrepareAsync(record, new PrepareRequest(options.DrainTimeout, options.AbortInFlight, options.KeepCaches, !options.SkipCanary), cancellationToken)
            .ConfigureAwait(false);
        var elapsed = context.Services.Clock.GetElapsedTime(started);
        // The canary runs inside prepare (after the drain, before the release): its own phase, taken out of prepare's.
        context.Timings.Add("prepare", elapsed > outcome.CanaryTime ? elapsed - outcome.CanaryTime : TimeSpan.Zero);
        context.Timings.Add("canary", outcome.CanaryTime);
        context.Canary = outcome.Canary;
        context.Runtime = outcome.Runtime;

        // Read while the tree is quiet and still alive: a dump without -LeaveRunning ends it.
        context.Tree = engines.Tree(record.RootProcessId);
        context.MappedFiles = context.Services.Host.MappedFiles(context.Tree.ProcessIds);
        return StepOutcome.Continue;
    }

    /// <summary>An engine that a dump has ended, or that serves already, has nothing to resume.</summary>
    private static async Task ResumeIfPreparedAsync(SaveContext context)
    {
        var engines = context.Services.Engines;
        if (!engines.IsPrepared(context.Record))
        {
            return;
        }

        context.Observer.Verbose($"Resuming engine {context.Record.Name}.");
        var fifo = await engines.OpenResumeFifoAsync(context.Record, ResumeTimeout, CancellationToken.None).ConfigureAwait(false);
        var terms = new ResumeTerms(context.Canary, context.Options.SkipCanary);
        await engines.ResumeThroughAsync(context.Record, fifo, terms, ResumeTimeout, CancellationToken.None).ConfigureAwait(false);
    }
}
