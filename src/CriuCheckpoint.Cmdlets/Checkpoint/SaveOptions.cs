using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

internal sealed record SaveOptions
{
    /// <summary>Resume the engine after the dump instead of letting CRIU end it.</summary>
    public bool LeaveRunning { get; init; }

    /// <summary>Replace a checkpoint that already exists for this config hash.</summary>
    public bool Force { get; init; }

    public string? CriuPath { get; init; }

    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public bool AbortInFlight { get; init; }

    /// <summary>Release nothing before the dump: the KV cache (and weights read from source) go into the image.</summary>
    public bool KeepCaches { get; init; }

    /// <summary>GPU processes the driver checkpoints at once; 0 for all of them.</summary>
    public int CudaThrottleLimit { get; init; }

    public TimeSpan DumpTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Take no canary (the manifest records none) and check none when the engine resumes.</summary>
    public bool SkipCanary { get; init; }
}

/// <summary>What a save produced: the checkpoint, and the engine when it serves on (-LeaveRunning, or nothing was dumped).</summary>
internal sealed record SaveResult(EngineCheckpoint Checkpoint, EngineInfo? Engine);
