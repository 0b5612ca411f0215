using System.Text.RegularExpressions;
using CliWrap.Buffered;
using CliWrap;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>The criu executable this module uses, found and version-checked once per call site.</summary>
internal sealed partial class CriuTool
{
    public const string EnvironmentVariable = "CRIU_PATH";

    /// <summary>Older CRIU fails on kernels ≥ 6.16 (TCP socket options, vDSO layout): docs/architecture.md, "CRIU and driver constraints".</summary>
    public static readonly Version MinimumVersion = new(4, 2);

    internal CriuTool(string path, Version version)
    {
        Path = path;
        Version = version;
    }

    public string Path { get; }

    public Version Version { get; }

    /// <summary>Candidates in order: -CriuPath, $CRIU_PATH, the module's tools folder, then PATH.</summary>
    public static IEnumerable<(string Source, string Path)> Candidates(string? requested)
    {
        if (!string.IsNullOrEmpty(requested))
        {
            yield return ("-CriuPath", requested);
            yield break;
        }

        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnvironment)
        {
            yield return ($"${EnvironmentVariable}", fromEnvironment);
            yield break;
        }

        yield return ("module tools folder", System.IO.Path.Combine(EngineHostFiles.ModuleDirectory, "tools", "criu", "bin", "criu"));
        if (Executables.Find("criu") is { } onPath)
        {
            yield return ("PATH", onPath);
        }
    }

    public static async Task<CriuTool> LocateAsync(string? requested, IOperationObserver observer, CancellationToken cancellationToken)
    {
        var tried = new List<string>();
        foreach (var (source, candidate) in Candidates(requested))
        {
            if (Executables.Find(candidate) is not { } path)
            {
                tried.Add($"{candidate} ({source}: not found)");
                continue;
            }

            observer.Debug(CommandLine.Format([path, "--version"]));
            var version = await ReadVersionAsync(path, cancellationToken).ConfigureAwait(false);
            if (version < MinimumVersion)
            {
                throw new CriuCheckpointException(ErrorIds.CriuTooOld, FailureKind.NotInstalled,
                    $"criu at {path} ({source}) is version {version}; this kernel needs {MinimumVersion} or newer. "
                    + "Run './build.ps1 deps' to install CRIU into tools/criu, or pass -CriuPath.", path);
            }

            return new CriuTool(path, version);
        }

        throw new CriuCheckpointException(ErrorIds.CriuNotFound, FailureKind.NotInstalled,
            $"criu was not found. Tried: {string.Join("; ", tried)}. Run './build.ps1 deps' to install CRIU into tools/criu, "
            + $"set ${EnvironmentVariable}, or pass -CriuPath.", requested);
    }

    public static async Task<Version> ReadVersionAsync(string path, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        BufferedCommandResult result;
        try
        {
            result = await Cli.Wrap(path).WithArguments("--version").WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CriuCheckpointException(ErrorIds.CriuNotFound, FailureKind.OperationTimeout, $"'{path} --version' did not answer within 15 s.", path);
        }

        return ParseVersion(result.StandardOutput) ?? throw new CriuCheckpointException(ErrorIds.CriuNotFound, FailureKind.NotInstalled,
            $"'{path} --version' exited with code {result.ExitCode} and printed no version: {result.StandardOutput}{result.StandardError}".Trim(), path);
    }

    /// <summary>Reads "Version: 4.2.1" (or "Version: 3.17") from criu --version.</summary>
    public static Version? ParseVersion(string output) =>
        VersionLine().Match(output) is { Success: true } match ? Version.Parse(match.Groups[1].Value) : null;

    [GeneratedRegex(@"^Version:\s*(\d+\.\d+(?:\.\d+)?)", RegexOptions.Multiline)]
    private static partial Regex VersionLine();
}
