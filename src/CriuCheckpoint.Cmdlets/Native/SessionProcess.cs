using CliWrap;
using CliWrap.Buffered;

namespace CriuCheckpoint.Native;

/// <summary>
/// Runs a command in a process session of its own (setsid): stdin from /dev/null, stdout and stderr to a file, never a
/// TTY, its PID (the session's id) recorded in a file before it runs. Either detached, so it outlives the pwsh session
/// (an engine, a replica's criu), or waited for, with whatever is left of its session killed when it ends, so helpers
/// it forks can neither hold our pipes open nor outlive it (criu dump).
/// </summary>
internal static class SessionProcess
{
    // $0 is the pid file and $1 the output file: the shell records its own PID, then execs the command in place, so the
    // recorded PID is the command's and the session leader's.
    private const string Script = "echo $$ > \"$0\"; out=$1; shift; exec \"$@\" < /dev/null > \"$out\" 2>&1";
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(2);

    /// <summary>setsid's argv: the session, the recording shell, then <paramref name="command"/>. Pure.</summary>
    public static IReadOnlyList<string> Arguments(bool wait, string pidFile, string outputFile, IReadOnlyList<string> command) =>
        new[] { wait ? "-w" : "-f", "sh", "-c", Script, pidFile, outputFile }.Concat(command).ToArray();

    /// <summary>Starts the command detached and returns its PID once recorded.</summary>
    public static async Task<int> StartAsync(IReadOnlyList<string> command, string pidFile, string outputFile, string workingDirectory,
        IReadOnlyDictionary<string, string?> environment, CancellationToken cancellationToken)
    {
        var setsid = Setsid();
        var arguments = Arguments(wait: false, pidFile, outputFile, command);
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

        throw new NativeException(NativeFailure.TimedOut, command[0], $"The detached launcher did not record a PID in {pidFile} within 10 s.");
    }

    /// <summary>
    /// Runs the command and returns its exit code. However it ends (done, failed, cancelled), whatever is left of its
    /// session is killed and the pid file removed.
    /// </summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> command, string pidFile, string outputFile, CancellationToken cancellationToken)
    {
        try
        {
            var result = await Cli.Wrap(Setsid())
                .WithArguments(Arguments(wait: true, pidFile, outputFile, command))
                .WithValidation(CommandResultValidation.None)
                .ExecuteAsync(cancellationToken).ConfigureAwait(false);
            return result.ExitCode;
        }
        finally
        {
            EndSession(pidFile);
        }
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

    private static void EndSession(string pidFile)
    {
        if (ReadPid(pidFile) is { } sessionId)
        {
            var terminator = new ProcessTerminator();
            terminator.Kill(terminator.SessionMembers(sessionId, 0));
        }

        File.Delete(pidFile);
    }

    private static string Setsid() =>
        Executables.Find("setsid") ?? throw new NativeException(NativeFailure.Missing, "setsid", "setsid (util-linux) was not found on PATH.");
}
