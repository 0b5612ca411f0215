using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>The checkpoint calls of the host's NVIDIA driver (<see cref="CudaDriver"/>).</summary>
internal sealed class CudaCheckpointApi : ICudaCheckpointApi
{
    private readonly CudaDriver driver;

    private CudaCheckpointApi(CudaDriver driver)
    {
        this.driver = driver;
    }

    /// <summary>The driver's CUDA version, e.g. 13.0.</summary>
    public string DriverCudaVersion => driver.VersionText;

    /// <summary>For checkpoint and restore: throws GpuDriverNotFound without a usable driver, GpuDriverTooOld before r580.</summary>
    public static CudaCheckpointApi Open()
    {
        return GpuDriverFailure.Call(() =>
        {
            var driver = CudaDriver.Instance;
            driver.EnsureCheckpointSupport();
            return new CudaCheckpointApi(driver);
        });
    }

    /// <summary>For state queries: null where there is no usable driver or it has no checkpoint functions (before r570).</summary>
    public static CudaCheckpointApi? TryOpen()
    {
        try
        {
            var driver = CudaDriver.Instance;
            return driver.HasCheckpointFunctions ? new CudaCheckpointApi(driver) : null;
        }
        catch (NativeException e) when (e.Failure == NativeFailure.Missing)
        {
            return null;
        }
    }

    public void Lock(int processId, TimeSpan timeout)
    {
        // timeoutMs 0 means no timeout to the driver, so an infinite wait is 0 and a finite one at least 1 ms.
        var timeoutMs = timeout == Timeout.InfiniteTimeSpan ? 0u : (uint)Math.Clamp(Math.Ceiling(timeout.TotalMilliseconds), 1, uint.MaxValue);
        Check(driver.Lock(processId, timeoutMs), "cuCheckpointProcessLock", processId);
    }

    public void Checkpoint(int processId) => Check(driver.Checkpoint(processId), "cuCheckpointProcessCheckpoint", processId);

    public void Restore(int processId, IReadOnlyList<GpuPair> gpuPairs) =>
        Check(driver.Restore(processId, NativePairs(gpuPairs)), "cuCheckpointProcessRestore", processId);

    public void Unlock(int processId) => Check(driver.Unlock(processId), "cuCheckpointProcessUnlock", processId);

    public CudaProcessState GetState(int processId)
    {
        Check(driver.GetState(processId, out var state), "cuCheckpointProcessGetState", processId);
        return state switch
        {
            0 => CudaProcessState.Running,
            1 => CudaProcessState.Locked,
            2 => CudaProcessState.Checkpointed,
            3 => CudaProcessState.Failed,
            _ => CudaProcessState.Unknown,
        };
    }

    public int? GetRestoreThreadId(int processId)
    {
        var result = driver.GetRestoreThreadId(processId, out var threadId);
        // What the driver answers for a process without CUDA; CRIU's CUDA plugin reads it the same way.
        if (result is CudaResult.InvalidValue or CudaResult.NotInitialized)
        {
            return null;
        }

        Check(result, "cuCheckpointProcessGetRestoreThreadId", processId);
        return threadId;
    }

    /// <summary>The pairs as the driver reads them: CUcheckpointGpuPair, two CUuuids of 16 bytes each.</summary>
    internal static CudaGpuPair[] NativePairs(IReadOnlyList<GpuPair> gpuPairs)
    {
        var pairs = new CudaGpuPair[gpuPairs.Count];
        for (var i = 0; i < pairs.Length; i++)
        {
            GpuPair.UuidBytes(gpuPairs[i].OldUuid).CopyTo(pairs[i].OldUuid);
            GpuPair.UuidBytes(gpuPairs[i].NewUuid).CopyTo(pairs[i].NewUuid);
        }

        return pairs;
    }

    private void Check(int result, string function, int processId)
    {
        if (result != CudaResult.Success)
        {
            throw new CudaCallException(function, processId, result, driver.ErrorName(result));
        }
    }
}
