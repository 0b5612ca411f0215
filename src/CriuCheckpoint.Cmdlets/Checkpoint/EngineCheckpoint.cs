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

    public PhaseTimings Timings { get; init; } = new();

    public CheckpointManifest Manifest { get; init; } = new();

    /// <summary>Whether this host can restore it; Get-EngineCheckpoint fills it in.</summary>
    public bool? Compatible => CompatibilityIssues is null ? null : CompatibilityIssues.Count == 0;

    public IReadOnlyList<CompatibilityIssue>? CompatibilityIssues { get; init; }

    public override string ToString() => Path;
}
