namespace CriuCheckpoint.Engine;

/// <summary>How an engine came to be.</summary>
public enum StartSource
{
    Cold,
    Checkpoint,
}

/// <summary>What the module persists about an engine in its run directory (engine.json), so any session finds it.</summary>
internal sealed class EngineRecord
{
    public string Id { get; set; } = string.Empty;

    public string Name { get; set; } = string.Empty;

    public EngineSpec Spec { get; set; } = new();

    public string Python { get; set; } = string.Empty;

    public string ConfigHash { get; set; } = string.Empty;

    public string RunDirectory { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    public StartSource StartedFrom { get; set; }

    /// <summary>The host PID of the tree's root: the engine frontend, or the restore helper for a restored engine.</summary>
    public int RootProcessId { get; set; }

    /// <summary>The root's start time (clock ticks since boot) so a reused PID is never mistaken for the engine.</summary>
    public ulong RootStartTime { get; set; }

    /// <summary>The checkpoint an engine was restored from, if any.</summary>
    public string? CheckpointPath { get; set; }
}
