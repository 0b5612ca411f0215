using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

/// <summary>
/// P/Invoke declarations of the NVIDIA Management Library (libnvidia-ml.so.1), the library nvidia-smi reads GPUs and
/// their processes with. Signatures and struct layouts: NVML API Reference (nvml.h of the r580 drivers).
/// <see cref="NvmlSession"/> is the way to call them.
/// </summary>
internal static unsafe partial class Nvml
{
    public const string Library = "libnvidia-ml.so.1";

    public const int Success = 0;
    public const int ErrorInsufficientSize = 7;

    /// <summary>NVML_VALUE_NOT_AVAILABLE: what usedGpuMemory holds when the driver does not know.</summary>
    public const ulong ValueNotAvailable = ulong.MaxValue;

    // Buffer sizes of nvml.h: NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE, NVML_DEVICE_NAME_V2_BUFFER_SIZE.
    public const int DriverVersionBufferSize = 80;
    public const int UuidBufferSize = 96;
    public const int NameBufferSize = 96;

    [LibraryImport(Library)]
    public static partial int nvmlInit_v2();

    [LibraryImport(Library)]
    public static partial int nvmlShutdown();

    [LibraryImport(Library)]
    public static partial nint nvmlErrorString(int result);

    [LibraryImport(Library)]
    public static partial int nvmlSystemGetDriverVersion(byte* version, uint length);

    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetCount_v2(out uint deviceCount);

    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetHandleByIndex_v2(uint index, out nint device);

    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetUUID(nint device, byte* uuid, uint length);

    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetName(nint device, byte* name, uint length);

    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetMemoryInfo(nint device, out NvmlMemory memory);

    /// <summary>The N of the device's /dev/nvidiaN, which is how /proc/PID/fd tells which GPU a process opened.</summary>
    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetMinorNumber(nint device, out uint minorNumber);

    [LibraryImport(Library)]
    public static partial int nvmlDeviceGetComputeRunningProcesses_v3(nint device, ref uint infoCount, NvmlProcessInfo* infos);
}

/// <summary>nvmlMemory_t: total, free and used bytes of a GPU's memory.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlMemory
{
    public ulong Total;
    public ulong Free;
    public ulong Used;
}

/// <summary>nvmlProcessInfo_t as the _v3 process queries fill it: pid, usedGpuMemory, gpuInstanceId, computeInstanceId (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlProcessInfo
{
    public uint Pid;
    public ulong UsedGpuMemory;
    public uint GpuInstanceId;
    public uint ComputeInstanceId;
}
