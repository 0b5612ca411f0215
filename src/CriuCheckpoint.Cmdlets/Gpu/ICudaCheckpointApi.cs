namespace CriuCheckpoint.Gpu;

/// <summary>
/// The NVIDIA driver's per-process checkpoint calls (cuCheckpointProcess*), addressed by PID. A process goes
/// Running → Locked (Lock) → Checkpointed (Checkpoint: its GPU memory moves to host memory and it lets go of the GPU),
/// and back: Checkpointed → Locked (Restore) → Running (Unlock). Failed calls throw <see cref="CudaCallException"/>.
/// An interface so the coordinator's ordering and rollback are testable without a GPU.
/// </summary>
internal interface ICudaCheckpointApi
{
    /// <summary>The CUDA version the driver supports, e.g. 13.0: recorded in a checkpoint's manifest.</summary>
    string DriverCudaVersion { get; }

    /// <summary>Blocks the process's further CUDA calls, waiting at most <paramref name="timeout"/> for those in flight.</summary>
    void Lock(int processId, TimeSpan timeout);

    void Checkpoint(int processId);

    /// <summary>Brings the GPU state back; with pairs, onto other GPUs (one pair per checkpointed GPU, see <see cref="GpuMap"/>).</summary>
    void Restore(int processId, IReadOnlyList<GpuPair> gpuPairs);

    void Unlock(int processId);

    CudaProcessState GetState(int processId);

    /// <summary>The driver's restore thread of the process, or null when the process has not initialised CUDA.</summary>
    int? GetRestoreThreadId(int processId);
}
