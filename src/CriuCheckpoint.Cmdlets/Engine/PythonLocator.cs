using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>Finds the Python that runs the engine host: -PythonPath, $CRIUCHECKPOINT_PYTHON, then python3 on PATH.</summary>
internal static class PythonLocator
{
    public const string EnvironmentVariable = "CRIUCHECKPOINT_PYTHON";

    public static string Resolve(string? requested)
    {
        var candidate = !string.IsNullOrEmpty(requested) ? requested
            : Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } configured ? configured
            : "python3";
        return Executables.Find(candidate) ?? throw new CriuCheckpointException(
            ErrorIds.PythonNotFound,
            FailureKind.NotInstalled,
            $"Python interpreter '{candidate}' was not found or is not executable. Pass -PythonPath or set ${EnvironmentVariable}.",
            candidate);
    }
}
