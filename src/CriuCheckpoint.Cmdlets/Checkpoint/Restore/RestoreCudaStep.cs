using CriuCheckpoint.Core;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Hands the GPU state back to the replica's CUDA processes while they wait on the FIFO, before they may use it, onto
/// the GPUs the checkpoint names or their counterparts here. Their PIDs inside the namespace are the ones the image
/// recorded; the driver wants their host PIDs. Nothing to undo apart from the replica itself.
/// </summary>
internal sealed class RestoreCudaStep : IStep<RestoreContext>
{
    public string Name => "RestoreCuda";

    public const int Start = 60;

    public int PercentAtStart => Start;

    public string Describe(RestoreContext context) => "CUDA: restore and unlock every GPU process";

    public async Task<StepOutcome> RunAsync(RestoreContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        if (context.Manifest.Gpu is not { } gpu)
        {
            return StepOutcome.Continue;
        }

        var record = context.Record;
        var tree = context.Services.Engines.Tree(record.RootProcessId).Processes;
        var hostPids = gpu.ProcessIds
            .Select(nsPid => tree.FirstOrDefault(p => p.NamespaceProcessId == nsPid && p.ProcessId != record.RootProcessId)?.ProcessId
                ?? throw new CriuCheckpointException(ErrorIds.CudaRestoreFailed, FailureKind.InvalidOperation,
                    $"Replica {record.Name}: the restored tree has no process {nsPid} of the checkpoint's CUDA processes.", record.Name))
            .ToArray();
        var hostUuids = context.Services.Gpus.Collect(Array.Empty<int>()).Devices.OrderBy(d => d.Index).Select(d => d.Uuid).ToList();
        var pairs = GpuMap.Pairs(gpu.DeviceUuids, hostUuids);
        var result = await new CudaCheckpointCoordinator(context.Services.OpenCudaApi(), context.Observer)
            .RestoreAsync(hostPids, pairs, new CudaCheckpointOptions { MaxParallelism = context.Options.CudaThrottleLimit }, cancellationToken)
            .ConfigureAwait(false);
        foreach (var (phase, duration) in result.Timings.Phases)
        {
            context.Timings.Add(phase, duration);
        }

        context.Observer.Verbose($"Replica {record.Name}: CUDA state restored to host PIDs {string.Join(", ", hostPids)} ({result.Timings}).");
        return StepOutcome.Continue;
    }
}
