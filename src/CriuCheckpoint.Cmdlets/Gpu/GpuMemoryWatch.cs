using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// The driver's view of an engine's GPU memory through NVML. NVML lists a process of another PID namespace (a
/// restored replica) under its PID there, so both of each process's PIDs are looked for.
/// </summary>
internal sealed class GpuMemoryWatch : IGpuMemoryWatch
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private readonly INvmlReader nvml;
    private readonly ProcFs procFs;

    public GpuMemoryWatch(INvmlReader nvml, ProcFs procFs)
    {
        this.nvml = nvml;
        this.procFs = procFs;
    }

    public bool UsesGpu(IReadOnlyCollection<ProcessNode> processes) =>
        processes.Any(p => NvidiaDeviceFiles.From(procFs.ReadFileDescriptorTargets(p.ProcessId))?.UsesCuda == true);

    public async Task<long> WaitForReleaseAsync(IReadOnlyCollection<ProcessNode> processes, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var pids = processes.SelectMany(p => new[] { p.ProcessId, p.NamespaceProcessId }).ToHashSet();
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var held = nvml.Read().Processes.Where(p => pids.Contains(p.ProcessId)).Sum(p => p.UsedMemoryBytes ?? 0);
            if (held == 0 || DateTime.UtcNow >= deadline)
            {
                return held;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }
}
