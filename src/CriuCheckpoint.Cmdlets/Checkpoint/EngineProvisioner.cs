using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Start-VllmEngine -CheckpointStore: restore when the store has a checkpoint of this configuration, otherwise cold
/// start, save with -LeaveRunning and serve from the engine just started: restore, cold start or both, in one switch.
/// </summary>
internal sealed class EngineProvisioner
{
    private readonly CheckpointServices services;
    private readonly IOperationObserver observer;

    public EngineProvisioner(CheckpointServices services, IOperationObserver observer)
    {
        this.services = services;
        this.observer = observer;
    }

    public async Task<EngineInfo> StartAsync(EngineSpec spec, string? name, CheckpointStore store, TimeSpan readyTimeout, string? criuPath, CancellationToken cancellationToken)
    {
        var launcher = new EngineLauncher(services.Registry, observer, services.ProcFs, services.Python);
        spec = await launcher.ResolveAsync(spec, cancellationToken).ConfigureAwait(false);
        var configHash = ConfigHash.Compute(spec);
        if (FindRestorable(store, configHash) is { } checkpoint)
        {
            observer.Verbose($"{checkpoint.Path} holds this configuration ({configHash}): restoring it.");
            var outcome = (await new CheckpointRestorer(services, observer).RestoreAsync(checkpoint,
                new RestoreOptions { Name = name, CriuPath = criuPath, PythonPath = spec.Python, Timeout = readyTimeout }, cancellationToken).ConfigureAwait(false))[0];
            return outcome.Engine ?? throw outcome.Failure!;
        }

        observer.Verbose($"{store.Path} has no checkpoint of this configuration ({configHash}) to restore: cold start, then save.");
        var engine = await launcher.StartAsync(spec, name, readyTimeout, cancellationToken).ConfigureAwait(false);
        try
        {
            var saved = await new CheckpointSaver(services, observer).SaveAsync(engine, store, new SaveOptions { LeaveRunning = true, CriuPath = criuPath }, cancellationToken)
                .ConfigureAwait(false);
            observer.Verbose($"Saved {saved.Checkpoint.Path}; engine {engine.Name} serves on.");
            return (saved.Engine ?? engine) with { StartupTime = engine.StartupTime };
        }
        catch (CriuCheckpointException e)
        {
            // The engine serves either way; the next start simply cannot restore yet.
            observer.Warning($"Engine {engine.Name} serves, but saving it to {store.Path} failed ({e.ErrorId}): {e.Message}");
            return engine;
        }
    }

    /// <summary>The store's checkpoint of this configuration; one that cannot be opened is a warning and a cold start.</summary>
    private EngineCheckpoint? FindRestorable(CheckpointStore store, string configHash)
    {
        try
        {
            return store.Find(configHash);
        }
        catch (CriuCheckpointException e) when (e.ErrorId is ErrorIds.CheckpointCorrupt or ErrorIds.CheckpointIncompatible)
        {
            observer.Warning($"The checkpoint of this configuration in {store.Path} cannot be restored ({e.ErrorId}): {e.Message}");
            return null;
        }
    }
}
