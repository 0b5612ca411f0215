namespace CriuCheckpoint.Engine;

/// <summary>Where the Python engine host ships: the EngineHost folder beside this assembly (the built module folder).</summary>
public static class EngineHostFiles
{
    public static string Directory { get; } =
        Path.Combine(Path.GetDirectoryName(typeof(EngineHostFiles).Assembly.Location)!, "EngineHost");
}
