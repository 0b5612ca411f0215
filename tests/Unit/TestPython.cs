namespace CriuCheckpoint.Tests;

/// <summary>The Python the engine host runs under in these tests: $CRIUCHECKPOINT_PYTHON (set by build.ps1), else Debian's.</summary>
internal static class TestPython
{
    public static string Path { get; } =
        Environment.GetEnvironmentVariable("CRIUCHECKPOINT_PYTHON") is { Length: > 0 } configured ? configured : "/usr/bin/python3";
}
