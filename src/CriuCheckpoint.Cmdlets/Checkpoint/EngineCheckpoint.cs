using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>A published checkpoint as the pipeline sees it (PowerShell type CriuCheckpoint.Checkpoint.EngineCheckpoint).</summary>
public sealed record EngineCheckpoint
{
    public string Path { get; init; } = string.Empty;

    public string ConfigHash { get; init; } = string.Empty;

    public DateTimeOffset CreatedAt { get; init; }

    public string Backend { get; init; } = string.Empty;

    public string Model { get; init; } = string.Empty;

    public string EngineName { get; init; } = string.Empty;

    /// <summary>Bytes of the whole checkpoint directory (CRIU images, log snapshot, manifest).</summary>
    public long SizeBytes { get; init; }

    public long GpuBytes { get; init; }

    public IReadOnlyList<ProcessNode> ProcessTree { get; init; } = Array.Empty<ProcessNode>();

    /// <summary>The phases of the save, in seconds.</summary>
    public PhaseTimings Timings { get; init; } = new();

    /// <summary>The wall time of the save.</summary>
    public double SaveSeconds => Timings.TotalSeconds;

    public CheckpointManifest Manifest { get; init; } = new();

    /// <summary>Whether this host can restore it: every cmdlet that writes a checkpoint compares it with this host.</summary>
    public bool? Compatible => CompatibilityIssues is null ? null : CompatibilityIssues.Count == 0;

    /// <summary>How it differs from this host; null only where it was not compared (read by a service, not written by a cmdlet).</summary>
    public IReadOnlyList<CompatibilityIssue>? CompatibilityIssues { get; init; }

    public override string ToString() => Path;
}
