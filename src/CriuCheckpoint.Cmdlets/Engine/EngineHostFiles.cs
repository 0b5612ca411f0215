namespace CriuCheckpoint.Engine;

/// <summary>Where the module's files are: this assembly's folder (the built module folder) holds the Python engine host.</summary>
internal static class EngineHostFiles
{
    public static string ModuleDirectory { get; } = Path.GetDirectoryName(typeof(EngineHostFiles).Assembly.Location)!;

    public static string Directory { get; } = Path.Combine(ModuleDirectory, "EngineHost");
}
