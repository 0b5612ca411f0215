namespace CriuCheckpoint.Gpu;

/// <summary>
/// What the inventory needs from NVML, behind an interface so tests can stand in for a driver: one read of the GPUs and
/// of the processes with a CUDA context on each. Throws GpuDriverNotFound where there is no usable driver.
/// </summary>
internal interface INvmlReader
{
    NvmlSnapshot Read();
}

/// <summary>The GPUs and their compute processes at one moment.</summary>
internal sealed record NvmlSnapshot(IReadOnlyList<GpuDevice> Devices, IReadOnlyList<NvmlComputeProcess> Processes);

/// <summary>
/// A process NVML lists on a GPU (by device index). Its PID is the one the driver recorded, which may belong to another
/// PID namespace than this session's. UsedMemoryBytes is null when the driver does not know.
/// </summary>
internal sealed record NvmlComputeProcess(int ProcessId, int DeviceIndex, long? UsedMemoryBytes);
