using CriuCheckpoint.Engine;
using Newtonsoft.Json;
using Newtonsoft.Json.Converters;

namespace CriuCheckpoint.Gpu;

/// <summary>Whether a weight holder serves its weights, is still loading them, or has exited.</summary>
[JsonConverter(typeof(StringEnumConverter))]
public enum WeightHolderState
{
    Loading,
    Ready,
    Exited,
}

/// <summary>
/// A resident weight holder (PowerShell type CriuCheckpoint.Gpu.WeightHolder), as Start-WeightHolder and
/// Get-WeightHolder write it: a process that keeps one model's weights in one GPU's memory and lends them to restored
/// engines of that model on that GPU, which map them at resume instead of reading the model's files.
/// </summary>
public sealed record WeightHolder
{
    public string Id { get; init; } = string.Empty;

    public string Name { get; init; } = string.Empty;

    /// <summary>The model directory whose safetensors files it holds.</summary>
    public string Model { get; init; } = string.Empty;

    /// <summary>The GPU it holds them on: NVML's (nvidia-smi's) index, as given to Start-WeightHolder.</summary>
    public int GpuIndex { get; init; }

    public string? GpuUuid { get; init; }

    public WeightHolderState State { get; init; }

    /// <summary>Bytes of weights it holds in GPU memory.</summary>
    public long WeightBytes { get; init; }

    public int Tensors { get; init; }

    /// <summary>Seconds it took to read the files into GPU memory.</summary>
    public double LoadSeconds { get; init; }

    public int ProcessId { get; init; }

    public string RunDirectory { get; init; } = string.Empty;

    public DateTimeOffset CreatedAt { get; init; }

    internal WeightHolderRecord Record { get; init; } = new();

    internal HolderReady? Ready { get; init; }

    /// <summary>The socket engines ask for the weights on; null until it is ready.</summary>
    internal string? Socket => Ready?.Socket;

    public override string ToString() => Name;
}

/// <summary>What the module records of a holder it started (holder.json in its run directory).</summary>
internal sealed class WeightHolderRecord
{
    public string Id { get; set; } = string.Empty;

    public string Name { get; set; } = string.Empty;

    public string Model { get; set; } = string.Empty;

    public int GpuIndex { get; set; }

    public string Python { get; set; } = string.Empty;

    public string RunDirectory { get; set; } = string.Empty;

    public int RootProcessId { get; set; }

    public ulong RootStartTime { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The holder's ready.json (docs/protocol.md, "Weight holder"): what it holds, where, and how to ask for it.</summary>
internal sealed record HolderReady
{
    public int Pid { get; set; }

    public string Socket { get; set; } = string.Empty;

    public string Model { get; set; } = string.Empty;

    public string GpuUuid { get; set; } = string.Empty;

    public long Bytes { get; set; }

    /// <summary>Where each tensor is in the allocation; the module only counts them.</summary>
    public List<System.Text.Json.JsonElement> Layout { get; set; } = new();

    [System.Text.Json.Serialization.JsonPropertyName("load_s")]
    public double LoadSeconds { get; set; }

    /// <summary>The safetensors files it read, as they were when it read them.</summary>
    public List<HeldFile> Files { get; set; } = new();
}

/// <summary>One model file by name, size and modification time: a file that changed since the holder read it no longer matches.</summary>
internal sealed record HeldFile
{
    public string Name { get; init; } = string.Empty;

    public long Size { get; init; }

    public long MtimeNs { get; init; }
}

/// <summary>The files of a holder's run directory.</summary>
internal sealed class HolderRunDirectory
{
    public HolderRunDirectory(string path) => Path = path;

    public string Path { get; }

    public string RecordFile => System.IO.Path.Combine(Path, "holder.json");

    public string PidFile => System.IO.Path.Combine(Path, "holder.pid");

    public string ReadyFile => System.IO.Path.Combine(Path, "ready.json");

    public string FailedFile => System.IO.Path.Combine(Path, "failed.json");

    public string LogFile => System.IO.Path.Combine(Path, "holder.log");

    /// <summary>The socket the holder listens on; the Python side names it the same (docs/protocol.md).</summary>
    public string Socket => System.IO.Path.Combine(Path, "holder.sock");

    public HolderReady? ReadReady() => Engine.RunDirectory.ReadJson<HolderReady>(ReadyFile);

    public FailedInfo? ReadFailed() => Engine.RunDirectory.ReadJson<FailedInfo>(FailedFile);

    public string LogTail() => Engine.RunDirectory.Tail(LogFile);
}
