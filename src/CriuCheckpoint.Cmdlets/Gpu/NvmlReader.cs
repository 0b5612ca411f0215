using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>Reads the GPUs and their compute processes from the host's NVML (libnvidia-ml.so.1).</summary>
internal sealed class NvmlReader : INvmlReader
{
    public NvmlSnapshot Read() => GpuDriverFailure.Call(ReadDriver);

    private static NvmlSnapshot ReadDriver()
    {
        using var nvml = NvmlSession.Open();
        var driverVersion = nvml.DriverVersion() ?? string.Empty;
        var devices = new List<GpuDevice>();
        var processes = new List<NvmlComputeProcess>();
        foreach (var index in Enumerable.Range(0, nvml.DeviceCount()))
        {
            if (nvml.Device(index) is not { } handle)
            {
                continue;
            }

            var memory = nvml.Memory(handle);
            devices.Add(new GpuDevice
            {
                Index = index,
                Uuid = nvml.Uuid(handle) ?? string.Empty,
                Name = nvml.Name(handle) ?? string.Empty,
                MemoryTotalBytes = (long)(memory?.Total ?? 0),
                MemoryUsedBytes = (long)(memory?.Used ?? 0),
                DriverVersion = driverVersion,
                MinorNumber = nvml.MinorNumber(handle),
            });
            processes.AddRange(nvml.ComputeProcesses(handle).Select(p => new NvmlComputeProcess(
                (int)p.Pid, index, p.UsedGpuMemory == Nvml.ValueNotAvailable ? null : (long)p.UsedGpuMemory)));
        }

        return new NvmlSnapshot(devices, processes);
    }
}
