using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// Stops a weight holder by PID: SIGTERM (it unmaps and frees its GPU memory and removes its socket), SIGKILL after the
/// grace period, then waits until the driver has its GPU memory back, and removes its run directory. Engines that mapped
/// its weights keep them until they release them: the driver frees the memory when the last mapping goes.
/// </summary>
internal sealed class WeightHolderStopper
{
    private static readonly TimeSpan GpuReleaseTimeout = TimeSpan.FromSeconds(30);
    private readonly WeightHolderRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;
    private readonly IGpuMemoryWatch? gpuMemory;

    public WeightHolderStopper(WeightHolderRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null, IGpuMemoryWatch? gpuMemory = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
        this.gpuMemory = gpuMemory;
    }

    public async Task StopAsync(WeightHolderRecord record, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var activity = $"Stopping weight holder {record.Name}";
        var terminator = new ProcessTerminator(procFs);
        var members = record.RootProcessId > 1 && procFs.IsAlive(record.RootProcessId, record.RootStartTime)
            ? terminator.SessionMembers(record.RootProcessId, record.RootStartTime)
            : Array.Empty<ProcessNode>();
        if (members.Count > 0)
        {
            var usedGpu = gpuMemory?.UsesGpu(members) == true;
            observer.Progress(activity, "Terminating it", 20);
            if (!await terminator.TerminateAsync(members, gracePeriod, cancellationToken).ConfigureAwait(false))
            {
                throw new CriuCheckpointException(ErrorIds.StopFailed, FailureKind.InvalidOperation,
                    $"Weight holder {record.Name}: processes {string.Join(", ", members.Where(p => procFs.IsAlive(p.ProcessId, p.StartTime)).Select(p => p.ProcessId))} survived SIGKILL.", record.Name);
            }

            if (usedGpu)
            {
                observer.Progress(activity, "Waiting for the driver to release its GPU memory", 70);
                var held = await gpuMemory!.WaitForReleaseAsync(members, GpuReleaseTimeout, cancellationToken).ConfigureAwait(false);
                if (held > 0)
                {
                    throw new CriuCheckpointException(ErrorIds.StopFailed, FailureKind.ResourceUnavailable,
                        $"Weight holder {record.Name} exited, but the NVIDIA driver still lists {held >> 20} MiB of GPU memory for it after {GpuReleaseTimeout.TotalSeconds:0} s. "
                        + "Get-GpuProcess shows the GPUs.", record.Name);
                }
            }
        }

        registry.Remove(record);
        observer.Progress(activity, "Stopped", 100);
    }
}
