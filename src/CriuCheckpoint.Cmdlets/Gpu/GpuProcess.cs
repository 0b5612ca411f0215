using Newtonsoft.Json;
using Newtonsoft.Json.Converters;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// The CUDA checkpoint state of a process (CUprocessState), or Unknown where the driver was not or could not be asked;
/// ConvertTo-Json writes it by name (StringEnumConverter).
/// </summary>
[JsonConverter(typeof(StringEnumConverter))]
public enum CudaProcessState
{
    Running,
    Locked,
    Checkpointed,
    Failed,
    Unknown,
}

/// <summary>
/// A process that uses a GPU, one per process and GPU (PowerShell type CriuCheckpoint.Gpu.GpuProcess), as
/// Get-GpuProcess writes it. GpuIndex is NVML's (nvidia-smi's) index; it and GpuUuid are null for a process that
/// initialised CUDA but holds no GPU yet.
/// </summary>
public sealed record GpuProcess
{
    public int ProcessId { get; init; }

    public int ParentProcessId { get; init; }

    public string Name { get; init; } = string.Empty;

    public string CommandLine { get; init; } = string.Empty;

    public int? GpuIndex { get; init; }

    public string? GpuUuid { get; init; }

    /// <summary>GPU memory the process holds on this GPU, as NVML reports it; 0 when NVML does not list it there.</summary>
    public long GpuMemoryBytes { get; init; }

    public CudaProcessState CudaState { get; init; } = CudaProcessState.Unknown;

    /// <summary>The engine whose process tree holds the process, when the module knows it.</summary>
    public string? EngineId { get; init; }

    public string? EngineName { get; init; }

    /// <summary>The weight holder the process is, when it is one (Start-WeightHolder).</summary>
    public string? WeightHolderId { get; init; }

    public string? WeightHolderName { get; init; }

    public override string ToString() => $"{ProcessId} {Name} GPU {GpuIndex?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"}";
}
