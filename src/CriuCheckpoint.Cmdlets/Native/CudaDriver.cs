using System.Globalization;
using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

/// <summary>
/// The NVIDIA CUDA driver library (libcuda.so.1): its per-process checkpoint API, called on processes by PID. Loaded
/// and initialised (cuInit(0)) at most once per pwsh process, on first use, so hosts without a GPU never touch it and
/// no call pays for driver initialisation twice. Each call returns the driver's CUresult; callers decide what it means.
/// Signatures: NVIDIA CUDA Driver API reference, "CUDA Checkpointing" (cuda.h of CUDA 12.8 to 13.x).
/// </summary>
internal sealed unsafe partial class CudaDriver
{
    public const string Library = "libcuda.so.1";

    /// <summary>
    /// cuDriverGetVersion of the r580 drivers (CUDA 13.0): the checkpoint ABI with GPU pairs. r570 has the functions
    /// but restores only onto the GPU a process was checkpointed on; CRIU's CUDA plugin draws the same line.
    /// </summary>
    public const int MinimumCheckpointVersion = 13000;

    private static readonly string[] CheckpointFunctions =
    {
        "cuCheckpointProcessLock",
        "cuCheckpointProcessCheckpoint",
        "cuCheckpointProcessRestore",
        "cuCheckpointProcessUnlock",
        "cuCheckpointProcessGetState",
        "cuCheckpointProcessGetRestoreThreadId",
    };

    // A failure to load is remembered too: the library does not appear while pwsh runs.
    private static readonly Lazy<CudaDriver> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    private CudaDriver(int version, IReadOnlyList<string> missingCheckpointFunctions)
    {
        Version = version;
        MissingCheckpointFunctions = missingCheckpointFunctions;
    }

    /// <summary>The driver, loaded and initialised; throws a NativeException (Missing) where there is none that works.</summary>
    public static CudaDriver Instance => Loaded.Value;

    /// <summary>The CUDA version the driver supports, as cuDriverGetVersion says: 1000 × major + 10 × minor (13000 = 13.0).</summary>
    public int Version { get; }

    public string VersionText => string.Create(CultureInfo.InvariantCulture, $"{Version / 1000}.{Version % 1000 / 10}");

    /// <summary>Checkpoint functions this driver does not export (all of them before r570).</summary>
    public IReadOnlyList<string> MissingCheckpointFunctions { get; }

    /// <summary>Whether the state queries can be called (drivers since r570 export them).</summary>
    public bool HasCheckpointFunctions => MissingCheckpointFunctions.Count == 0;

    /// <summary>Throws a NativeException (TooOld) unless the driver can checkpoint and restore processes, onto other GPUs too (r580+).</summary>
    public void EnsureCheckpointSupport()
    {
        if (HasCheckpointFunctions && Version >= MinimumCheckpointVersion)
        {
            return;
        }

        var missing = HasCheckpointFunctions ? string.Empty : $" It lacks {string.Join(", ", MissingCheckpointFunctions)}.";
        throw new NativeException(NativeFailure.TooOld, Library,
            $"The NVIDIA driver supports CUDA {VersionText}; checkpointing GPU processes needs driver 580 or newer (CUDA 13.0).{missing}");
    }

    public int Lock(int pid, uint timeoutMs)
    {
        var args = new CudaLockArgs { TimeoutMs = timeoutMs };
        return cuCheckpointProcessLock(pid, &args);
    }

    public int Checkpoint(int pid)
    {
        var args = new CudaCheckpointArgs();
        return cuCheckpointProcessCheckpoint(pid, &args);
    }

    /// <summary>Restores onto the GPUs of <paramref name="gpuPairs"/>; none restores onto the GPUs the process was checkpointed on.</summary>
    internal int Restore(int pid, ReadOnlySpan<CudaGpuPair> gpuPairs)
    {
        // An empty span pins to null: no pairs, as the driver expects when nothing moves.
        fixed (CudaGpuPair* pairs = gpuPairs)
        {
            var args = new CudaRestoreArgs { GpuPairs = pairs, GpuPairsCount = (uint)gpuPairs.Length };
            return cuCheckpointProcessRestore(pid, &args);
        }
    }

    public int Unlock(int pid)
    {
        var args = new CudaUnlockArgs();
        return cuCheckpointProcessUnlock(pid, &args);
    }

    /// <summary>CUprocessState: 0 running, 1 locked, 2 checkpointed, 3 failed.</summary>
    public int GetState(int pid, out int state) => cuCheckpointProcessGetState(pid, out state);

    public int GetRestoreThreadId(int pid, out int threadId) => cuCheckpointProcessGetRestoreThreadId(pid, out threadId);

    /// <summary>The driver's name for a CUresult (cuGetErrorName), e.g. CUDA_ERROR_NOT_READY.</summary>
    public string ErrorName(int result) =>
        cuGetErrorName(result, out var name) == CudaResult.Success && name != 0
            ? Marshal.PtrToStringUTF8(name) ?? CudaResult.Name(result)
            : CudaResult.Name(result);

    private static CudaDriver Load()
    {
        // Probing first keeps DllNotFoundException from ever escaping a LibraryImport call: the imports below bind to
        // the library this loads, and it stays loaded (the driver starts threads that must not lose their code).
        if (!NativeLibrary.TryLoad(Library, out var handle))
        {
            throw new NativeException(NativeFailure.Missing, Library,
                $"{Library} was not found: this host has no NVIDIA driver, or its libraries are not on the loader path.");
        }

        var missing = CheckpointFunctions.Where(f => !NativeLibrary.TryGetExport(handle, f, out _)).ToArray();
        var result = cuInit(0);
        if (result == CudaResult.Success)
        {
            result = cuDriverGetVersion(out var version);
            if (result == CudaResult.Success)
            {
                return new CudaDriver(version, missing);
            }
        }

        var name = cuGetErrorName(result, out var text) == CudaResult.Success && text != 0 ? Marshal.PtrToStringUTF8(text) : null;
        // libcuda reads CUDA_VISIBLE_DEVICES from this process's environment: hiding every GPU makes cuInit fail too.
        var visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
        var hint = visible is null ? string.Empty : $" CUDA_VISIBLE_DEVICES is '{visible}' in this session.";
        throw new NativeException(NativeFailure.Missing, Library,
            $"The NVIDIA driver cannot be used: cuInit failed with {name ?? CudaResult.Name(result)} ({result}). Is the kernel module loaded, and may this user open /dev/nvidia*?{hint}");
    }

    [LibraryImport(Library)]
    private static partial int cuInit(uint flags);

    [LibraryImport(Library)]
    private static partial int cuDriverGetVersion(out int driverVersion);

    [LibraryImport(Library)]
    private static partial int cuGetErrorName(int error, out nint name);

    [LibraryImport(Library)]
    private static partial int cuCheckpointProcessLock(int pid, CudaLockArgs* args);

    [LibraryImport(Library)]
    private static partial int cuCheckpointProcessCheckpoint(int pid, CudaCheckpointArgs* args);

    [LibraryImport(Library)]
    private static partial int cuCheckpointProcessRestore(int pid, CudaRestoreArgs* args);

    [LibraryImport(Library)]
    private static partial int cuCheckpointProcessUnlock(int pid, CudaUnlockArgs* args);

    [LibraryImport(Library)]
    private static partial int cuCheckpointProcessGetState(int pid, out int state);

    [LibraryImport(Library)]
    private static partial int cuCheckpointProcessGetRestoreThreadId(int pid, out int tid);
}
