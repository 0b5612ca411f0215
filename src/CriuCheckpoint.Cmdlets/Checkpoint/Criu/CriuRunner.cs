using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Runs criu in a session of its own, from typed options; every failure carries the command that ran and the CRIU log excerpt.</summary>
internal sealed class CriuRunner : ICriuRunner
{
    /// <summary>The namespace script brings lo up and mounts before it connects: well under a second.</summary>
    private static readonly TimeSpan HandoverTimeout = TimeSpan.FromSeconds(30);

    private readonly IOperationObserver observer;

    public CriuRunner(IOperationObserver observer) => this.observer = observer;

    public Task<CriuTool> LocateAsync(string? requested, CancellationToken cancellationToken) => CriuTool.LocateAsync(requested, observer, cancellationToken);

    /// <summary>
    /// criu runs in a session of its own with its output in a file: when it ends (done, failed, timed out or cancelled,
    /// which kills it and releases its ptrace hold on the tree) whatever is left of its session is killed.
    /// </summary>
    public async Task DumpAsync(CriuTool criu, CriuOptions options, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var command = new[] { criu.Path }.Concat(options.ToArguments()).ToArray();
        observer.Debug(CommandLine.Format(command));
        var work = Path.GetDirectoryName(options.ImagesDirectory)!;
        var outputFile = Path.Combine(work, "criu.out");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        int exitCode;
        try
        {
            exitCode = await SessionProcess.RunAsync(command, Path.Combine(work, "criu.pid"), outputFile, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Failure(ErrorIds.CriuDumpFailed, FailureKind.OperationTimeout, command, null,
                $"criu dump did not finish within {timeout.TotalSeconds:0} s (-TimeoutSec) and was killed", options.LogPath);
        }
        catch (NativeException e)
        {
            throw new CriuCheckpointException(ErrorIds.CriuDumpFailed, FailureKind.NotInstalled, e.Message, e.Source, e, e.Details);
        }

        var output = File.Exists(outputFile) ? File.ReadAllText(outputFile) : string.Empty;
        File.Delete(outputFile);
        if (exitCode != 0)
        {
            throw Failure(ErrorIds.CriuDumpFailed, FailureKind.InvalidOperation, command, exitCode, "criu dump failed", options.LogPath, output);
        }
    }

    /// <summary>
    /// Starts criu restore in the replica's namespaces, then hands the checked images directory's descriptor to the
    /// helper criu is exec'd through (images_fd.py), over a socket in the replica's private run directory.
    /// </summary>
    public async Task<CriuSession> StartRestoreAsync(CriuTool criu, CriuOptions options, RestoreNamespace place, string pidFile, string outputFile, CancellationToken cancellationToken)
    {
        var command = place.Wrap(new[] { criu.Path }.Concat(options.ToArguments()).ToArray());
        observer.Debug(CommandLine.Format(command));
        try
        {
            using var handover = DescriptorHandover.Listen(Path.Combine(place.ReplicaDirectory, RestoreNamespace.ImagesSocketName));
            var pid = await SessionProcess.StartAsync(command, pidFile, outputFile, options.WorkDirectory, new Dictionary<string, string?>(), cancellationToken)
                .ConfigureAwait(false);
            var images = place.Images ?? throw new InvalidOperationException("The images directory was not opened before the restore.");
            if (!await handover.SendAsync((int)images.DangerousGetHandle(), HandoverTimeout, () => Directory.Exists($"/proc/{pid}"), cancellationToken).ConfigureAwait(false))
            {
                // Not yet in the replica's record, so nothing else would end it.
                KillSession(pid);
                throw Failure(ErrorIds.CriuRestoreFailed, FailureKind.InvalidOperation, command, null,
                    $"criu restore did not take the images directory within {HandoverTimeout.TotalSeconds:0} s (see {outputFile})", options.LogPath, ReadOutput(outputFile));
            }

            return new CriuSession(pid, command, options.LogPath);
        }
        catch (IOException e)
        {
            throw Failure(ErrorIds.CriuRestoreFailed, FailureKind.InvalidOperation, command, null, $"criu restore could not be handed its images: {e.Message}", options.LogPath);
        }
        catch (NativeException e)
        {
            throw Failure(ErrorIds.CriuRestoreFailed, e.Failure == NativeFailure.Missing ? FailureKind.NotInstalled : FailureKind.InvalidOperation,
                command, null, $"criu restore could not be started: {e.Message}", options.LogPath, e.Details);
        }
    }

    private static void KillSession(int leader)
    {
        var terminator = new ProcessTerminator();
        if (ProcFs.Host.ReadStat(leader) is { } stat)
        {
            terminator.Kill(terminator.SessionMembers(leader, stat.StartTime));
        }
    }

    private static string? ReadOutput(string path) => File.Exists(path) ? File.ReadAllText(path) : null;

    /// <summary>A CRIU failure: what failed, the command line that ran, and the log's Error lines with their context.</summary>
    public static CriuCheckpointException Failure(string errorId, FailureKind kind, IReadOnlyList<string> commandLine, int? exitCode, string what, string logPath, string? standardError = null)
    {
        var command = string.Join(' ', commandLine);
        var message = exitCode is null ? $"{what}: {command}" : $"{what} (exit code {exitCode}): {command}";
        var details = $"CRIU log {logPath}:{Environment.NewLine}{CriuLog.ExcerptOfFile(logPath)}";
        if (!string.IsNullOrWhiteSpace(standardError))
        {
            details += $"{Environment.NewLine}output:{Environment.NewLine}{standardError.Trim()}";
        }

        return new CriuCheckpointException(errorId, kind, message, commandLine[0], details: details);
    }
}
