using CriuCheckpoint.Core;

namespace CriuCheckpoint.Gpu;

/// <summary>Bounds on the driver calls of <see cref="CudaCheckpointCoordinator"/>, each per process.</summary>
internal sealed record CudaCheckpointOptions
{
    /// <summary>How long a lock may wait for the process's CUDA calls in flight (the driver's own timeout).</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a checkpoint (GPU memory to host memory, about 1 s per 5 GB on an H200 with r580) may take.</summary>
    public TimeSpan CheckpointTimeout { get; init; } = TimeSpan.FromMinutes(10);

    public TimeSpan RestoreTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Unlocks and state queries return at once; this only bounds a driver that hangs.</summary>
    public TimeSpan UnlockTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long undoing waits for a driver call that overran its timeout to return before undoing that process anyway:
    /// restoring or unlocking a process while the driver still works on it is undefined.
    /// </summary>
    public TimeSpan OverrunGrace { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Processes handled at once; 0 for all of them (the default: GPU copies of different processes overlap).</summary>
    public int MaxParallelism { get; init; }
}

/// <summary>
/// What a checkpoint did: the processes now Checkpointed, the GPU memory they held before (per NVML), and the
/// cuda-lock and cuda-checkpoint phases.
/// </summary>
internal sealed record CudaCheckpointResult(IReadOnlyList<int> ProcessIds, long GpuBytes, PhaseTimings Timings);

/// <summary>What a restore did: the processes now Running again, and the cuda-restore and cuda-unlock phases.</summary>
internal sealed record CudaRestoreResult(IReadOnlyList<int> ProcessIds, PhaseTimings Timings);
