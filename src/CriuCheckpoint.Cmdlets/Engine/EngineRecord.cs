using CriuCheckpoint.Core;
using Newtonsoft.Json;
using Newtonsoft.Json.Converters;

namespace CriuCheckpoint.Engine;

/// <summary>How an engine came to be; ConvertTo-Json writes it by name (StringEnumConverter).</summary>
[JsonConverter(typeof(StringEnumConverter))]
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

    /// <summary>
    /// The host PID of the tree's root, the session leader: the engine frontend, or for a restored engine the
    /// namespace wrapper (unshare), whose death ends the whole namespace.
    /// </summary>
    public int RootProcessId { get; set; }

    /// <summary>The root's start time (clock ticks since boot) so a reused PID is never mistaken for the engine.</summary>
    public ulong RootStartTime { get; set; }

    /// <summary>A restored engine's namespace init (criu): killed, the kernel ends every process of the namespace.</summary>
    public int NamespaceInitProcessId { get; set; }

    public ulong NamespaceInitStartTime { get; set; }

    /// <summary>A restored engine's frontend, by host PID: the engine lives exactly as long as it does.</summary>
    public int EngineProcessId { get; set; }

    public ulong EngineStartTime { get; set; }

    /// <summary>The checkpoint an engine was restored from, if any.</summary>
    public string? CheckpointPath { get; set; }

    /// <summary>How long the cold start or the restore took, by phase in seconds, once the engine served.</summary>
    public Dictionary<string, double>? StartupPhases { get; set; }

    public double? StartupSeconds { get; set; }

    /// <summary>What the restore did beside its phases (its weight prefetch); null when nothing.</summary>
    public List<BackgroundWork>? StartupBackground { get; set; }

    /// <summary>Keeps the startup of an engine that now serves, so every session's Get-VllmEngine shows it.</summary>
    public void RecordStartup(PhaseTimings timings)
    {
        StartupPhases = timings.ToDictionary(p => p.Key, p => p.Value);
        StartupSeconds = timings.TotalSeconds;
        StartupBackground = timings.Background.Count == 0 ? null : timings.Background.ToList();
    }

    /// <summary>The startup as it was kept; null for an engine that has not served yet.</summary>
    public PhaseTimings? Startup() =>
        StartupPhases is null || StartupSeconds is null ? null : PhaseTimings.FromSeconds(StartupPhases, StartupSeconds.Value, StartupBackground);
}
