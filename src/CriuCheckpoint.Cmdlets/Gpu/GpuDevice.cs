namespace CriuCheckpoint.Gpu;

/// <summary>A GPU as NVML describes it. MinorNumber is the N of /dev/nvidiaN; null when NVML does not say.</summary>
internal sealed record GpuDevice
{
    public int Index { get; init; }

    public string Uuid { get; init; } = string.Empty;

    public string Name { get; init; } = string.Empty;

    public long MemoryTotalBytes { get; init; }

    public long MemoryUsedBytes { get; init; }

    public string DriverVersion { get; init; } = string.Empty;

    public int? MinorNumber { get; init; }

    public override string ToString() => $"{Index} {Name} {Uuid}";
}
