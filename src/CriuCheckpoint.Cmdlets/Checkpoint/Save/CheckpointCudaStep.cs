using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Locks every GPU process of the tree and has the driver move its GPU state into host memory, in parallel, so the
/// dump carries it. Undone by restoring and unlocking them, so a failed save never leaves a GPU process locked.
/// </summary>
internal sealed class CheckpointCudaStep : IStep<SaveContext>
{
    public const string Compensation = "restore the CUDA state";

    public string Name => "CheckpointCuda";

    public int PercentAtStart => 20;

    public string Describe(SaveContext context) => "CUDA: lock and checkpoint every GPU process";

    public async Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var gpus = context.Services.Gpus;
        if (!gpus.AnyUsesCuda(context.Tree.ProcessIds))
        {
            return StepOutcome.Continue;
        }

        var snapshot = gpus.Collect(context.Tree.ProcessIds.ToArray());
        var api = context.Services.OpenCudaApi();
        var coordinator = new CudaCheckpointCoordinator(api, context.Observer);
        var result = await coordinator.CheckpointAsync(snapshot.Processes, context.CudaOptions, cancellationToken).ConfigureAwait(false);
        rollback.Push(Compensation, () => RestoreIfAliveAsync(context, coordinator, result.ProcessIds));
        foreach (var (phase, duration) in result.Timings.Phases)
        {
            context.Timings.Add(phase, duration);
        }

        var devices = snapshot.Devices.OrderBy(d => d.Index).ToList();
        context.Gpu = new GpuManifest
        {
            ProcessIds = result.ProcessIds.ToList(),
            DeviceUuids = devices.Select(d => d.Uuid).ToList(),
            DeviceNames = devices.Select(d => d.Name).ToList(),
            DriverVersion = devices.FirstOrDefault()?.DriverVersion ?? string.Empty,
            CudaVersion = api.DriverCudaVersion,
            BytesCheckpointed = result.GpuBytes,
            ServingBytes = devices.Select(d => context.ServingGpuBytes.GetValueOrDefault(d.Uuid)).ToList(),
        };
        context.Observer.Verbose($"CUDA checkpoint of PIDs {string.Join(", ", result.ProcessIds)}: {result.GpuBytes >> 20} MiB moved to host memory ({result.Timings}).");
        return StepOutcome.Continue;
    }

    /// <summary>A dump without -LeaveRunning ends the processes: then there is no CUDA state left to hand back.</summary>
    private static async Task RestoreIfAliveAsync(SaveContext context, CudaCheckpointCoordinator coordinator, IReadOnlyList<int> processIds)
    {
        if (!context.Services.Engines.IsAlive(context.Record))
        {
            return;
        }

        var restored = await coordinator.RestoreAsync(processIds, null, context.CudaOptions, CancellationToken.None).ConfigureAwait(false);
        foreach (var (phase, duration) in restored.Timings.Phases)
        {
            context.Timings.Add(phase, duration);
        }
    }
}
