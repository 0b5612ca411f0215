using System.Text.Json.Serialization;

namespace CriuCheckpoint.Engine;

/// <summary>What to launch: everything that decides the engine's loaded state, plus how to launch it.</summary>
public sealed record EngineSpec
{
    public string Backend { get; init; } = "tiny";

    public string Model { get; init; } = "tiny-256m";

    public int Workers { get; init; } = 1;

    public string Device { get; init; } = "auto";

    public string Dtype { get; init; } = "auto";

    public int? MaxModelLen { get; init; }

    public double GpuMemoryUtilization { get; init; } = 0.9;

    /// <summary>Backend-specific arguments, passed to the engine as one JSON object.</summary>
    public IReadOnlyDictionary<string, object?> EngineArgs { get; init; } = new SortedDictionary<string, object?>(StringComparer.Ordinal);

    /// <summary>The Python interpreter; not part of the config hash (the same model loads the same under any).</summary>
    [JsonIgnore]
    public string Python { get; init; } = "python3";
}
