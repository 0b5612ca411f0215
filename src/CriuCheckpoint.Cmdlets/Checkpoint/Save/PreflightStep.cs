using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Fails fast with a named cause before anything changes: privileges, criu found and new enough, an engine that can
/// be saved and serves. A checkpoint of this configuration that exists already is the result,
/// unless -Force.
/// </summary>
internal sealed class PreflightStep : IStep<SaveContext>
{
    public string Name => "Preflight";

    public int PercentAtStart => 0;

    public string Describe(SaveContext context) => "Preflight";

    public async Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var record = context.Record;
        context.Services.Host.EnsurePrivileges();
        context.Criu = await context.Services.Criu.LocateAsync(context.Options.CriuPath, cancellationToken).ConfigureAwait(false);
        if (record.StartedFrom == StartSource.Checkpoint)
        {
            throw new CriuCheckpointException(ErrorIds.RestoredEngineNotCheckpointable, FailureKind.NotImplemented,
                $"Engine {record.Name} was restored into its own PID namespace; saving a restored engine again is not supported. Save the engine it came from, or start one cold.",
                record.Name);
        }

        context.Services.Engines.EnsureServing(record);
        // -Force replaces what holds this configuration without reading it: a damaged checkpoint, or one of another
        // manifest schema, which cannot be opened, is replaced too; without -Force opening it names its problem.
        if (!context.Options.Force && context.Store.Find(record.ConfigHash) is { } existing)
        {
            context.Observer.Warning($"{existing.Path} already holds a checkpoint of this configuration ({record.ConfigHash}); nothing was dumped and engine {record.Name} serves on. Use -Force to replace it.");
            context.Checkpoint = existing;
            context.Serving = context.Engine;
            return StepOutcome.Finished;
        }

        context.ServingGpuBytes = ServingGpuBytes(context);
        context.Store.EnsureExists();
        context.Store.SweepStaging(context.Services.Clock.GetUtcNow() - CheckpointStore.StagingMaxAge);
        context.Timings.Add("preflight", context.Services.Clock.GetElapsedTime(started));
        context.Observer.Verbose($"Save preflight: criu {context.Criu.Version} at {context.Criu.Path}, {context.Timings["preflight"]:0.000} s.");
        return StepOutcome.Continue;
    }

    /// <summary>Read while the engine serves: after prepare its KV cache is gone, and a restore must find room for it.</summary>
    private static IReadOnlyDictionary<string, long> ServingGpuBytes(SaveContext context)
    {
        var pids = context.Engine.ProcessTree.Select(p => p.ProcessId).ToArray();
        var gpus = context.Services.Gpus;
        return !gpus.AnyUsesCuda(pids)
            ? new Dictionary<string, long>()
            : gpus.Collect(pids).Processes.Where(p => p.GpuUuid is not null)
                .GroupBy(p => p.GpuUuid!).ToDictionary(g => g.Key, g => g.Sum(p => p.GpuMemoryBytes));
    }
}
