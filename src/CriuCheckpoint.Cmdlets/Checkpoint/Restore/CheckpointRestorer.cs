using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Restores engines from a checkpoint as a sequence of steps (docs/architecture.md, "Restore"): Validate and
/// VerifyImages once, then each replica concurrently in its own PID, mount and network namespace with its own rollback
/// stack and deadline, so a checkpoint restores while its original runs and N times at once without collisions. A
/// replica that fails leaves nothing behind and the others are unaffected.
/// </summary>
internal sealed class CheckpointRestorer
{
    private readonly CheckpointServices services;
    private readonly IOperationObserver observer;

    public CheckpointRestorer(CheckpointServices services, IOperationObserver? observer = null)
    {
        this.services = services;
        this.observer = observer ?? NullObserver.Instance;
    }

    /// <summary>Run once for all replicas, before any starts; the weight prefetch goes on in the background beside them.</summary>
    public static IReadOnlyList<IStep<RestoreRequest>> OnceSteps { get; } = new IStep<RestoreRequest>[]
    {
        new ValidateStep(),
        new PrefetchWeightsStep(),
        new VerifyImagesStep(),
    };

    public static IReadOnlyList<IStep<RestoreContext>> ReplicaSteps { get; } = new IStep<RestoreContext>[]
    {
        new MakeRunDirectoryStep(),
        new RestoreProcessesStep(),
        new RestoreCudaStep(),
        new ResumeStep(),
        new VerifyStep(),
    };

    /// <summary>
    /// Restores the replicas; each entry is an engine or the failure of that replica. The weight prefetch is stopped
    /// and waited for before this returns, whichever way it ends: once every replica has resumed, each engine has read
    /// its weights, so what is still unread would help nobody.
    /// </summary>
    public async Task<IReadOnlyList<ReplicaOutcome>> RestoreAsync(EngineCheckpoint checkpoint, RestoreOptions options, CancellationToken cancellationToken)
    {
        using var request = OpenRequest(checkpoint.Path, options);
        try
        {
            await new StepPipeline<RestoreRequest>(OnceSteps, observer).RunAsync(request, request.Activity, Deadline.None, cancellationToken).ConfigureAwait(false);
            observer.Progress(request.Activity, $"Restoring {options.Count} replica(s)", 10);
            var replicas = Enumerable.Range(1, options.Count).Select(index => RestoreOneAsync(new RestoreContext(request, index), cancellationToken));
            var outcomes = await Task.WhenAll(replicas).ConfigureAwait(false);
            var prefetched = await request.StopPrefetchAsync().ConfigureAwait(false);
            foreach (var engine in outcomes.Select(o => o.Engine).OfType<EngineInfo>())
            {
                Keep(engine, prefetched);
            }

            observer.Progress(request.Activity, "Restored", 100);
            return outcomes;
        }
        finally
        {
            await request.StopPrefetchAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The checkpoint is checked on descriptors before its manifest is read, so a checkpoint swapped or removed
    /// meanwhile is CheckpointInsecure, not a missing or foreign manifest; then the manifest read through the checked
    /// descriptor is what is restored, validated as it is read (a piped object's may have been altered).
    /// </summary>
    private RestoreRequest OpenRequest(string checkpointPath, RestoreOptions options)
    {
        var trusted = StoreTrust.OpenCheckpoint(checkpointPath);
        try
        {
            return new RestoreRequest(CheckpointStore.Open(trusted), options, services, observer) { Trusted = trusted };
        }
        catch
        {
            trusted.Dispose();
            throw;
        }
    }

    private async Task<ReplicaOutcome> RestoreOneAsync(RestoreContext context, CancellationToken cancellationToken)
    {
        var started = services.Clock.GetTimestamp();
        var deadline = new Deadline(context.Options.Timeout, ErrorIds.RestoreTimeout, $"Restoring {context.Describe} of {context.Checkpoint.Path}", "-TimeoutSec");
        try
        {
            await new StepPipeline<RestoreContext>(ReplicaSteps, context.Observer).RunAsync(context, context.Activity, deadline, cancellationToken).ConfigureAwait(false);
        }
        catch (CriuCheckpointException e)
        {
            return new ReplicaOutcome(null, e);
        }

        context.Timings.Total = services.Clock.GetElapsedTime(started) + context.Request.Validated + context.Request.Verified;
        context.Observer.Progress(context.Activity, "Ready", 100);
        observer.Verbose($"Replica {context.Record.Name}: restored and serving at {context.Engine!.Endpoint}.");
        return new ReplicaOutcome(context.Engine with { StartupTime = context.Timings, Record = context.Record }, null);
    }

    /// <summary>
    /// A replica's timings gain the weight prefetch beside their phases (it overlapped them, so it is not added to the
    /// total), and are kept in its record for every session to read.
    /// </summary>
    private void Keep(EngineInfo engine, WeightPrefetchResult? prefetched)
    {
        if (prefetched is not null)
        {
            engine.StartupTime!.AddBackground(WeightPrefetch.Timing(prefetched));
        }

        engine.Record.RecordStartup(engine.StartupTime!);
        services.Registry.Save(engine.Record);
    }
}

/// <summary>One replica's result: the restored engine, or why it failed.</summary>
internal sealed record ReplicaOutcome(EngineInfo? Engine, CriuCheckpointException? Failure);
