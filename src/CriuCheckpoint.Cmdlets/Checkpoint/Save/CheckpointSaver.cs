using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Saves a serving engine into a store as a sequence of steps (docs/architecture.md, "Save"). Each step pushes the
/// compensation that undoes it; a failure or Ctrl+C unwinds them newest first, so the engine serves again, no GPU
/// process stays locked and nothing half-written becomes visible.
/// </summary>
internal sealed class CheckpointSaver
{
    private readonly CheckpointServices services;
    private readonly IOperationObserver observer;

    public CheckpointSaver(CheckpointServices services, IOperationObserver? observer = null)
    {
        this.services = services;
        this.observer = observer ?? NullObserver.Instance;
    }

    public static IReadOnlyList<IStep<SaveContext>> Steps { get; } = new IStep<SaveContext>[]
    {
        new PreflightStep(),
        new PrepareStep(),
        new CheckpointCudaStep(),
        new CheckSpaceStep(),
        new DumpStep(),
        new HashImagesStep(),
        new WriteManifestStep(),
        new PublishStep(),
        new ResumeOrRetireStep(),
    };

    public async Task<SaveResult> SaveAsync(EngineInfo engine, CheckpointStore store, SaveOptions options, CancellationToken cancellationToken)
    {
        var started = services.Clock.GetTimestamp();
        var context = new SaveContext(engine, store, options, services, observer);
        await new StepPipeline<SaveContext>(Steps, observer).RunAsync(context, context.Activity, Deadline.None, cancellationToken).ConfigureAwait(false);
        context.Timings.Total = services.Clock.GetElapsedTime(started);
        observer.Progress(context.Activity, "Saved", 100);
        var host = new HostComparison(services.Host.Facts(context.Criu!.Version.ToString(), string.Empty), services.Gpus);
        return new SaveResult(host.Compare(context.Checkpoint!), context.Serving);
    }
}
