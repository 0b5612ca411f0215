using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>Whether an engine's processes hold GPU memory, and waiting until the driver has taken it back.</summary>
internal interface IGpuMemoryWatch
{
    /// <summary>Whether any of the processes uses a GPU, answered from /proc without loading a driver.</summary>
    bool UsesGpu(IReadOnlyCollection<ProcessNode> processes);

    /// <summary>
    /// Waits until the driver lists none of the processes (by host or namespace PID) as holding GPU memory; returns
    /// the bytes still held when the timeout passes, 0 once released.
    /// </summary>
    Task<long> WaitForReleaseAsync(IReadOnlyCollection<ProcessNode> processes, TimeSpan timeout, CancellationToken cancellationToken);
}
