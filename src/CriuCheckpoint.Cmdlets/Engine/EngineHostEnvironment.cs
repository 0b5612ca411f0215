namespace CriuCheckpoint.Engine;

/// <summary>
/// What the engine host's Python must have before it starts: the module's EngineHost folder first on PYTHONPATH,
/// unbuffered output for the log, and no bytecode written into the module folder. Everything else the engine
/// needs in its environment it sets itself (engine_host/process_environment.py).
/// </summary>
internal static class EngineHostEnvironment
{
    public static Dictionary<string, string?> Create()
    {
        var pythonPath = Environment.GetEnvironmentVariable("PYTHONPATH");
        return new Dictionary<string, string?>
        {
            ["PYTHONPATH"] = string.IsNullOrEmpty(pythonPath) ? EngineHostFiles.Directory : $"{EngineHostFiles.Directory}:{pythonPath}",
            ["PYTHONUNBUFFERED"] = "1",
            ["PYTHONDONTWRITEBYTECODE"] = "1",
        };
    }
}
