using System.Diagnostics;
using CliWrap;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Runs criu through CliWrap with its output captured; failures carry the command, exit code and log excerpt.</summary>
internal sealed class CriuRunner
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
    /// Dumps the tree rooted at <paramref name="rootPid"/>. criu runs in a session of its own with its output in a file,
    /// so that helpers it forks can neither hold our pipes open nor outlive it: when criu ends (done, failed, timed out
    /// or cancelled, which kills it and releases its ptrace hold on the tree) whatever is left of its session is killed.
    /// </summary>
    public async Task<TimeSpan> DumpAsync(int rootPid, string imagesDirectory, bool leaveRunning, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var arguments = DumpArguments(rootPid, imagesDirectory, leaveRunning);
        var work = Path.GetDirectoryName(imagesDirectory)!;
        var pidFile = Path.Combine(work, "criu.pid");
        var outputFile = Path.Combine(work, "criu.out");
        var watch = Stopwatch.StartNew();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        CommandResult result;
        try
        {
            result = await Cli.Wrap("setsid")
                .WithArguments(new[] { "-w", "sh", "-c", SessionScript, pidFile, outputFile, Tool.Path }.Concat(arguments))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Failure(ErrorIds.CriuDumpFailed, FailureKind.OperationTimeout, arguments, null,
                $"criu dump did not finish within {timeout.TotalSeconds:0} s and was killed", Path.Combine(imagesDirectory, DumpLog));
        }
        finally
        {
            EndSession(pidFile);
        }

        var output = File.Exists(outputFile) ? File.ReadAllText(outputFile) : string.Empty;
        File.Delete(outputFile);
        if (result.ExitCode != 0)
        {
            throw Failure(ErrorIds.CriuDumpFailed, FailureKind.InvalidOperation, arguments, result.ExitCode,
                "criu dump failed", Path.Combine(imagesDirectory, DumpLog), output);
        }

        return watch.Elapsed;
    }

    // $0 pid file, $1 output file, then the command: it records its PID (the session's id) and execs in place.
    private const string SessionScript = "echo $$ > \"$0\"; out=$1; shift; exec \"$@\" < /dev/null > \"$out\" 2>&1";

    private static void EndSession(string pidFile)
    {
        if (DetachedProcess.ReadPid(pidFile) is { } sessionId)
        {
            var terminator = new ProcessTerminator();
            terminator.Kill(terminator.SessionMembers(sessionId, 0));
        }

        File.Delete(pidFile);
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
