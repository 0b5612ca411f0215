using CliWrap.Buffered;
using CliWrap;

namespace CriuCheckpoint.Native;

/// <summary>
/// Starts a command detached from the caller: its own session (setsid), stdin from /dev/null, stdout and stderr
/// to a log file, never a TTY, so it outlives the pwsh session. Its PID is recorded in a file before it runs.
/// </summary>
internal static class DetachedProcess
{
    // $0 is the pid file and $1 the log: the shell records its own PID, then execs the command in place,
    // so the recorded PID is the command's and the session leader's.
    private const string DetachScript = "echo $$ > \"$0\"; log=$1; shift; exec \"$@\" < /dev/null > \"$log\" 2>&1";
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(2);

    /// <summary>Starts the command and returns its PID once recorded.</summary>
    public static async Task<int> StartAsync(IReadOnlyList<string> command, string pidFile, string logFile, string workingDirectory,
        IReadOnlyDictionary<string, string?> environment, CancellationToken cancellationToken)
    {
        var setsid = Executables.Find("setsid") ?? throw new NativeException(NativeFailure.Missing, "setsid",
            "setsid (util-linux) was not found on PATH.");
        var arguments = new List<string> { "-f", "sh", "-c", DetachScript, pidFile, logFile };
        arguments.AddRange(command);
        var result = await Cli.Wrap(setsid)
            .WithArguments(arguments)
            .WithWorkingDirectory(workingDirectory)
            .WithEnvironmentVariables(environment)
            .WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync(cancellationToken)
            .ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new NativeException(NativeFailure.Failed, command[0],
                $"'{setsid} {string.Join(' ', arguments)}' exited with code {result.ExitCode}.", result.StandardError);
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (ReadPid(pidFile) is { } pid)
            {
                return pid;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }

        throw new NativeException(NativeFailure.TimedOut, command[0],
            $"The detached launcher did not record a PID in {pidFile} within 10 s.");
    }

    public static int? ReadPid(string pidFile)
    {
        try
        {
            var text = File.ReadAllText(pidFile);
            return text.EndsWith('\n') && int.TryParse(text.Trim(), out var pid) ? pid : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }
}
