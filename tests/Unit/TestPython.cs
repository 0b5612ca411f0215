namespace CriuCheckpoint.Tests;

/// <summary>The Python the engine host runs under in these tests: $CRIUCHECKPOINT_PYTHON (set by build.ps1), else Debian's.</summary>
internal static class TestPython
{
    public static string Path { get; } =
        Environment.GetEnvironmentVariable("CRIUCHECKPOINT_PYTHON") is { Length: > 0 } configured ? configured : "/usr/bin/python3";

    /// <summary>The repository this test assembly was built in: the Python scripts of tests/Unit and the engine host.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>The environment a test's Python script runs with: the engine host importable, no bytecode written.</summary>
    public static Dictionary<string, string?> ScriptEnvironment { get; } = new()
    {
        ["PYTHONPATH"] = System.IO.Path.Combine(RepositoryRoot, "module/EngineHost"),
        ["PYTHONDONTWRITEBYTECODE"] = "1",
    };

    private static string FindRepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(System.IO.Path.Combine(directory.FullName, "CriuCheckpoint.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException($"No CriuCheckpoint.sln above {AppContext.BaseDirectory}.");
    }
}
