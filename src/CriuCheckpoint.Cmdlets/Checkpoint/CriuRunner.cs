using System.Diagnostics;
using CliWrap;
using CliWrap.Buffered;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Runs criu through CliWrap with its output captured; failures carry the command, exit code and log excerpt.</summary>
public sealed class CriuRunner
{
    public const string DumpLog = "dump.log";

    public CriuRunner(CriuTool tool) => Tool = tool;

    public CriuTool Tool { get; }

    public static IReadOnlyList<string> DumpArguments(int rootPid, string imagesDirectory, bool leaveRunning)
    {
        var arguments = new List<string> { "dump", "-t", rootPid.ToString(), "-D", imagesDirectory, "-W", imagesDirectory, "-v4", "-o", DumpLog };
        if (leaveRunning)
        {
            arguments.Add("--leave-running");
        }

        return arguments;
    }

    /// <summary>
    /// Dumps the tree rooted at <paramref name="rootPid"/>. On timeout or cancellation criu is killed (SIGKILL), which
    /// releases its ptrace hold: the tree is left running and untraced (measured here, DESIGN notes in docs/checkpoint.md).
    /// </summary>
    public async Task<TimeSpan> DumpAsync(int rootPid, string imagesDirectory, bool leaveRunning, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var arguments = DumpArguments(rootPid, imagesDirectory, leaveRunning);
        var watch = Stopwatch.StartNew();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        BufferedCommandResult result;
        try
        {
            result = await Cli.Wrap(Tool.Path).WithArguments(arguments).WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Failure(ErrorIds.CriuDumpFailed, FailureKind.OperationTimeout, arguments, null,
                $"criu dump did not finish within {timeout.TotalSeconds:0} s and was killed", Path.Combine(imagesDirectory, DumpLog));
        }

        if (result.ExitCode != 0)
        {
            throw Failure(ErrorIds.CriuDumpFailed, FailureKind.InvalidOperation, arguments, result.ExitCode,
                "criu dump failed", Path.Combine(imagesDirectory, DumpLog), result.StandardError);
        }

        return watch.Elapsed;
    }

    public CriuCheckpointException Failure(string errorId, FailureKind kind, IEnumerable<string> arguments, int? exitCode, string what, string logPath, string? standardError = null)
    {
        var command = $"{Tool.Path} {string.Join(' ', arguments)}";
        var message = exitCode is null ? $"{what}: {command}" : $"{what} (exit code {exitCode}): {command}";
        var details = $"CRIU log {logPath}:{Environment.NewLine}{CriuLog.ExcerptOfFile(logPath)}";
        if (!string.IsNullOrWhiteSpace(standardError))
        {
            details += $"{Environment.NewLine}stderr:{Environment.NewLine}{standardError.Trim()}";
        }

        return new CriuCheckpointException(errorId, kind, message, command, details: details);
    }
}
