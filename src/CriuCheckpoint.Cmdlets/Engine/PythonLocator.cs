using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>Finds the Python that runs the engine host: -PythonPath, $CRIUCHECKPOINT_PYTHON, then python3 on PATH.</summary>
internal static class PythonLocator
{
    public const string EnvironmentVariable = "CRIUCHECKPOINT_PYTHON";

    public static string Resolve(string? requested)
    {
        var candidate = Choose(requested, Environment.GetEnvironmentVariable(EnvironmentVariable));
        return Executables.Find(candidate) ?? throw new CriuCheckpointException(
            ErrorIds.PythonNotFound,
            FailureKind.NotInstalled,
            $"Python interpreter '{candidate}' was not found or is not executable. Pass -PythonPath or set ${EnvironmentVariable}.",
            candidate);
    }

    /// <summary>Which interpreter to look for: the caller's, else the configured one, else python3 on PATH.</summary>
    public static string Choose(string? requested, string? configured) =>
        !string.IsNullOrEmpty(requested) ? requested : !string.IsNullOrEmpty(configured) ? configured : "python3";
}
