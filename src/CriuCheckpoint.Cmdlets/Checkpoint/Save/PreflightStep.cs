using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Fails fast with a named cause before anything changes: privileges, criu found and new enough, an engine that can
/// be saved and serves, room in the store. A checkpoint of this configuration that exists already is the result,
/// unless -Force.
/// </summary>
internal sealed class PreflightStep : IStep<SaveContext>
{
    /// <summary>The image beyond the tree's memory: page maps, the log snapshot, CRIU's own files.</summary>
    private const long Margin = 64L << 20;

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
        if (context.Store.Find(record.ConfigHash) is { } existing && !context.Options.Force)
        {
            context.Observer.Warning($"{existing.Path} already holds a checkpoint of this configuration ({record.ConfigHash}); nothing was dumped and engine {record.Name} serves on. Use -Force to replace it.");
            context.Checkpoint = existing;
            context.Serving = context.Engine;
            return StepOutcome.Finished;
        }

        context.Store.EnsureExists();
        context.Store.SweepStaging(context.Services.Clock.GetUtcNow() - CheckpointStore.StagingMaxAge);
        EnsureSpace(context);
        context.Timings.Add("preflight", context.Services.Clock.GetElapsedTime(started));
        context.Observer.Verbose($"Save preflight: criu {context.Criu.Version} at {context.Criu.Path}, {context.Timings["preflight"].TotalSeconds:0.000} s.");
        return StepOutcome.Continue;
    }

    /// <summary>The image holds roughly the resident memory of the tree plus what the driver moves from the GPU into it.</summary>
    private static void EnsureSpace(SaveContext context)
    {
        var host = context.Services.Host;
        var needed = host.ResidentBytes(context.Engine.ProcessTree.Select(p => p.ProcessId)) + context.Engine.GpuMemoryBytes + Margin;
        var available = host.AvailableBytes(context.Store.Path);
        if (available < needed)
        {
            throw new CriuCheckpointException(ErrorIds.InsufficientSpace, FailureKind.ResourceUnavailable,
                $"The store {context.Store.Path} has {available >> 20} MiB free; the checkpoint needs about {needed >> 20} MiB.", context.Store.Path);
        }
    }
}
