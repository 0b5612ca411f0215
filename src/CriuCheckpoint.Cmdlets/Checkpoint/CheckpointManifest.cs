using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>manifest.json of a checkpoint: what was saved, from where, with what, and how long each phase took.</summary>
public sealed class CheckpointManifest
{
    /// <summary>3: every image and the log snapshot carry their hash by 64 MiB pieces (<see cref="FileHash"/>); 2 had each file's XXH128 whole.</summary>
    public const int CurrentSchemaVersion = 3;
    public const string FileName = "manifest.json";

    public int SchemaVersion { get; set; } = CurrentSchemaVersion;

    public string ConfigHash { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    public string EngineId { get; set; } = string.Empty;

    public string EngineName { get; set; } = string.Empty;

    public EngineSpec Spec { get; set; } = new();

    /// <summary>The backend's own hash of what it loaded (hello's config_hash).</summary>
    public string? NativeConfigHash { get; set; }

    /// <summary>The engine's run directory at dump: restore mounts the replica's run directory over this path.</summary>
    public string RunDirectory { get; set; } = string.Empty;

    /// <summary>The engine log's size at dump: CRIU refuses to restore an open file whose size changed.</summary>
    public long LogSizeAtDump { get; set; }

    /// <summary>
    /// The engine log's permission bits at dump: CRIU refuses to restore an open file whose mode changed, and the
    /// snapshot in the checkpoint is 0600 whatever the log was.
    /// </summary>
    public int LogMode { get; set; }

    /// <summary>XXH128 of the log snapshot, as of <see cref="Images"/>.</summary>
    public string LogHash { get; set; } = string.Empty;

    public List<ProcessNode> ProcessTree { get; set; } = new();

    public HostFacts Host { get; set; } = new();

    public List<MappedFile> MappedFiles { get; set; } = new();

    public long ImageBytes { get; set; }

    /// <summary>What the save expected the image to take before it dumped (its space check).</summary>
    public long EstimatedImageBytes { get; set; }

    /// <summary>
    /// Every file of images/ with its size and hash: CRIU 4.2 hangs on a truncated pages image and restores whatever
    /// bytes a damaged one holds, so restore checks both first.
    /// </summary>
    public List<ImageFile> Images { get; set; } = new();

    public long GpuBytes { get; set; }

    /// <summary>The engine released nothing before the dump (Save-EngineCheckpoint -KeepCaches): its KV cache is in the image.</summary>
    public bool CachesKept { get; set; }

    /// <summary>The engine's answer to the canary at prepare, which every restore compares; null when saved with -SkipCanary.</summary>
    public CheckpointCanary? Canary { get; set; }

    /// <summary>The engine's tree, versions and environment at prepare (its inventory); the compatibility gate compares them.</summary>
    public EngineRuntime? Runtime { get; set; }

    /// <summary>What the NVIDIA driver checkpointed; null for engines that hold no CUDA state.</summary>
    public GpuManifest? Gpu { get; set; }

    /// <summary>Save phases in order, in seconds.</summary>
    public Dictionary<string, double> Timings { get; set; } = new();
}

/// <summary>Facts of the host a checkpoint was made on, compared with the restoring host.</summary>
public sealed class HostFacts
{
    public string Hostname { get; set; } = string.Empty;

    public string Architecture { get; set; } = string.Empty;

    public string Kernel { get; set; } = string.Empty;

    public string CpuModel { get; set; } = string.Empty;

    public string CriuVersion { get; set; } = string.Empty;

    public string Python { get; set; } = string.Empty;

    public string ModuleVersion { get; set; } = string.Empty;
}

/// <summary>A file the dumped processes had mapped, and its size then.</summary>
public sealed class MappedFile
{
    public string Path { get; set; } = string.Empty;

    public long Size { get; set; }
}

/// <summary>A file of the checkpoint's images/ folder: its plain name, its size and its hash (<see cref="FileHash"/>).</summary>
public sealed class ImageFile
{
    public string Path { get; set; } = string.Empty;

    public long Size { get; set; }

    public string Hash { get; set; } = string.Empty;
}

/// <summary>The GPU side of a checkpoint: which processes the driver checkpointed, on which GPUs, with which driver.</summary>
public sealed class GpuManifest
{
    /// <summary>PIDs of the CUDA processes as the image has them (the PIDs they get inside a restore's namespace).</summary>
    public List<int> ProcessIds { get; set; } = new();

    /// <summary>Every GPU of the dumping host in NVML index order: restore pairs each with a GPU of its own host.</summary>
    public List<string> DeviceUuids { get; set; } = new();

    public List<string> DeviceNames { get; set; } = new();

    public string DriverVersion { get; set; } = string.Empty;

    public string CudaVersion { get; set; } = string.Empty;

    public long BytesCheckpointed { get; set; }

    /// <summary>
    /// What the tree held on each GPU while it served, in <see cref="DeviceUuids"/>' order: what a replica takes back
    /// at resume, so what a restore needs free there.
    /// </summary>
    public List<long> ServingBytes { get; set; } = new();
}
