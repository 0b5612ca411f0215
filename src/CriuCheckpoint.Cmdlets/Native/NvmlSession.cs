using System.Runtime.InteropServices;
using System.Text;

namespace CriuCheckpoint.Native;

/// <summary>
/// One nvmlInit_v2 … nvmlShutdown span (NVML counts them, so sessions may overlap). Per-device queries return null or
/// nothing when NVML cannot answer for that device, so one lost or restricted GPU does not hide the others.
/// </summary>
internal sealed unsafe class NvmlSession : IDisposable
{
    private static readonly string[] Functions =
    {
        "nvmlInit_v2", "nvmlShutdown", "nvmlErrorString", "nvmlSystemGetDriverVersion", "nvmlDeviceGetCount_v2",
        "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetMinorNumber", "nvmlDeviceGetComputeRunningProcesses_v3",
    };

    // The functions the library lacks, or null without the library. Probing first keeps DllNotFoundException and
    // EntryPointNotFoundException from escaping the imports, which bind to the library loaded here.
    private static readonly Lazy<string[]?> MissingFunctions = new(() =>
        NativeLibrary.TryLoad(Nvml.Library, out var handle) ? Functions.Where(f => !NativeLibrary.TryGetExport(handle, f, out _)).ToArray() : null);

    private NvmlSession()
    {
    }

    /// <summary>
    /// Initialises NVML; throws a NativeException, Missing where the library is missing or no driver is loaded, TooOld
    /// where it lacks a function used here (the _v3 process query came with the r510 drivers).
    /// </summary>
    public static NvmlSession Open()
    {
        var missing = MissingFunctions.Value ?? throw new NativeException(NativeFailure.Missing, Nvml.Library,
            $"{Nvml.Library} was not found: this host has no NVIDIA driver, or its libraries are not on the loader path.");
        if (missing.Length > 0)
        {
            throw new NativeException(NativeFailure.TooOld, Nvml.Library,
                $"The NVIDIA driver's {Nvml.Library} lacks {string.Join(", ", missing)}: the driver is too old.");
        }

        var result = Nvml.nvmlInit_v2();
        if (result != Nvml.Success)
        {
            throw new NativeException(NativeFailure.Missing, Nvml.Library,
                $"NVML cannot be initialised: {ErrorString(result)} ({result}). Is the NVIDIA kernel module loaded?");
        }

        return new NvmlSession();
    }

    public void Dispose() => Nvml.nvmlShutdown();

    public string? DriverVersion()
    {
        var buffer = stackalloc byte[Nvml.DriverVersionBufferSize];
        return Nvml.nvmlSystemGetDriverVersion(buffer, Nvml.DriverVersionBufferSize) == Nvml.Success
            ? ReadString(buffer, Nvml.DriverVersionBufferSize)
            : null;
    }

    public int DeviceCount()
    {
        var result = Nvml.nvmlDeviceGetCount_v2(out var count);
        return result == Nvml.Success
            ? (int)count
            : throw new NativeException(NativeFailure.Failed, "nvmlDeviceGetCount_v2",
                $"NVML cannot count the GPUs: {ErrorString(result)} ({result}).");
    }

    public nint? Device(int index) =>
        Nvml.nvmlDeviceGetHandleByIndex_v2((uint)index, out var device) == Nvml.Success ? device : null;

    public string? Uuid(nint device)
    {
        var buffer = stackalloc byte[Nvml.UuidBufferSize];
        return Nvml.nvmlDeviceGetUUID(device, buffer, Nvml.UuidBufferSize) == Nvml.Success ? ReadString(buffer, Nvml.UuidBufferSize) : null;
    }

    public string? Name(nint device)
    {
        var buffer = stackalloc byte[Nvml.NameBufferSize];
        return Nvml.nvmlDeviceGetName(device, buffer, Nvml.NameBufferSize) == Nvml.Success ? ReadString(buffer, Nvml.NameBufferSize) : null;
    }

    public NvmlMemory? Memory(nint device) =>
        Nvml.nvmlDeviceGetMemoryInfo(device, out var memory) == Nvml.Success ? memory : null;

    public int? MinorNumber(nint device) =>
        Nvml.nvmlDeviceGetMinorNumber(device, out var minor) == Nvml.Success ? (int)minor : null;

    /// <summary>The processes with a CUDA context on the device; empty when NVML cannot say.</summary>
    public IReadOnlyList<NvmlProcessInfo> ComputeProcesses(nint device)
    {
        // Ask for the count, then for the list; processes that start in between make NVML ask for more room again.
        uint count = 0;
        var result = Nvml.nvmlDeviceGetComputeRunningProcesses_v3(device, ref count, null);
        while (result == Nvml.ErrorInsufficientSize)
        {
            var infos = new NvmlProcessInfo[count + 8];
            count = (uint)infos.Length;
            fixed (NvmlProcessInfo* buffer = infos)
            {
                result = Nvml.nvmlDeviceGetComputeRunningProcesses_v3(device, ref count, buffer);
            }

            if (result == Nvml.Success)
            {
                return infos[..(int)count];
            }
        }

        return Array.Empty<NvmlProcessInfo>();
    }

    private static string ErrorString(int result) => Marshal.PtrToStringUTF8(Nvml.nvmlErrorString(result)) ?? $"NVML error {result}";

    private static string ReadString(byte* buffer, int size)
    {
        var length = new ReadOnlySpan<byte>(buffer, size).IndexOf((byte)0);
        return Encoding.UTF8.GetString(buffer, length < 0 ? size : length);
    }
}
