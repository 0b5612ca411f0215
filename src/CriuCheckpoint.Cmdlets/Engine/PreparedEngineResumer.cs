using System.Diagnostics;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>
/// Brings back an engine left prepared for a checkpoint that never came (a save killed between prepare and dump, a
/// prepare_checkpoint from a client that went away): it waits on its resume FIFO, so it is resumed through it.
/// </summary>
internal sealed class PreparedEngineResumer
{
    private readonly EngineRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;

    public PreparedEngineResumer(EngineRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
    }

    /// <summary>
    /// Resumes the engine and describes it serving; an engine that serves already is described as it is. The engine
    /// compares its canary with the one it answered at its prepare_checkpoint, unless <paramref name="skipCanary"/>.
    /// </summary>
    public async Task<EngineInfo> ResumeAsync(EngineRecord record, bool skipCanary, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var inspector = new EngineInspector(registry, procFs);
        var engine = await inspector.DescribeAsync(record, probe: false, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        switch (engine.State)
        {
            case EngineState.Ready:
                observer.Verbose($"Engine {record.Name} is serving already.");
                return await inspector.DescribeAsync(record, probe: true, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
            case EngineState.Prepared:
                break;
            default:
                throw new CriuCheckpointException(engine.State is EngineState.Stopped or EngineState.Failed ? ErrorIds.EngineNotRunning : ErrorIds.EngineNotReady,
                    FailureKind.ResourceUnavailable, $"Engine {record.Name} is {engine.State}, not prepared for a checkpoint: there is nothing to resume.", record.Name);
        }

        var watch = Stopwatch.StartNew();
        observer.Progress($"Resuming engine {record.Name}", "Writing the resume message", 10);
        var terms = skipCanary ? new ResumeTerms(null, SkipCanary: true) : ResumeTerms.EnginesOwn;
        await new EngineResumer(procFs).ResumeAsync(record, terms, inspector.Liveness(record), timeout, cancellationToken).ConfigureAwait(false);
        observer.Verbose($"Engine {record.Name} resumed in {watch.Elapsed.TotalSeconds:0.000} s.");
        return await inspector.DescribeAsync(record, probe: true, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
    }
}
