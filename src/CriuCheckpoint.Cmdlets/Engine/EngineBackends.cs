namespace CriuCheckpoint.Engine;

public static class EngineBackends
{
    public static IReadOnlyList<string> Known { get; } = new[] { "tiny", "torch" };

    /// <summary>Models starting with '/', '.' or '~' are paths that must exist; others are presets or hub names.</summary>
    public static bool LooksLikePath(string model) =>
        model.StartsWith('/') || model.StartsWith('.') || model.StartsWith('~');
}
