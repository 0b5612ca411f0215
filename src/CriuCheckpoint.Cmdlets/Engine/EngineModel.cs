namespace CriuCheckpoint.Engine;

/// <summary>A built-in model (preset) of a backend, as Get-EngineModel writes it: -Model takes its Name.</summary>
public sealed class EngineModel
{
    public string Backend { get; init; } = string.Empty;

    public string Name { get; init; } = string.Empty;

    /// <summary>Its shape in words, as the engine host describes it.</summary>
    public string Description { get; init; } = string.Empty;

    public long Parameters { get; init; }

    /// <summary>Whether the backend loads this model when Start-VllmEngine is given no -Model.</summary>
    public bool IsDefault { get; init; }

    /// <summary>Whether the Python that was asked can run the backend; when not, <see cref="Reason"/> says why.</summary>
    public bool Available { get; init; }

    public string? Reason { get; init; }
}
