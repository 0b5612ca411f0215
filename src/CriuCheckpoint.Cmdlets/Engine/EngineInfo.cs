using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>An engine as the pipeline sees it (PowerShell type name CriuCheckpoint.Engine).</summary>
public sealed record EngineInfo
{
    public string Id { get; init; } = string.Empty;

    public string Name { get; init; } = string.Empty;

    public string Backend { get; init; } = string.Empty;

    public string Model { get; init; } = string.Empty;

    public string Device { get; init; } = string.Empty;

    public string? Endpoint { get; init; }

    public EngineState State { get; init; }

    /// <summary>Why the engine is Failed: its own report (failed.json), or that it runs but does not answer.</summary>
    public string? FailureReason { get; init; }

    public StartSource StartedFrom { get; init; }

    /// <summary>The host PID of the tree's root.</summary>
    public int ProcessId { get; init; }

    public IReadOnlyList<ProcessNode> ProcessTree { get; init; } = Array.Empty<ProcessNode>();

    /// <summary>The host PIDs of the tree, root first.</summary>
    public IReadOnlyList<int> ProcessIds => ProcessTree.Select(p => p.ProcessId).ToArray();

    public long HostMemoryBytes { get; init; }

    public long GpuMemoryBytes { get; init; }

    /// <summary>The KV cache pool the engine holds now (0 where caches are allocated per request).</summary>
    public long KvCacheBytes { get; init; }

    /// <summary>Requests the engine is serving now, as it said when asked; null when it was not asked.</summary>
    public int? InFlightRequests { get; init; }

    public string ConfigHash { get; init; } = string.Empty;

    /// <summary>The backend's own hash of what it loaded (e.g. vLLM's VllmConfig.compute_hash()).</summary>
    public string? NativeConfigHash { get; init; }

    public string RunDirectory { get; init; } = string.Empty;

    public string LogPath { get; init; } = string.Empty;

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>The phases of the cold start or the restore, in seconds; null for an engine that has not served yet.</summary>
    public PhaseTimings? StartupTime { get; init; }

    /// <summary>The wall time of the cold start or the restore.</summary>
    public double? StartupSeconds => StartupTime?.TotalSeconds;

    /// <summary>The registry's record, for the cmdlets; internal, so PowerShell neither shows nor serialises it.</summary>
    internal EngineRecord Record { get; init; } = new();

    /// <summary>"api Ready tcp://127.0.0.1:40123": what a string of an engine says.</summary>
    public override string ToString() => Endpoint is null ? $"{Name} {State}" : $"{Name} {State} {Endpoint}";
}
