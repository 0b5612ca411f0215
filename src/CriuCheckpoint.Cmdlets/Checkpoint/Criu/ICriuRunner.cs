namespace CriuCheckpoint.Checkpoint;

/// <summary>A criu restore started detached: the session leader's PID and what ran, for errors and cleanup.</summary>
internal sealed record CriuSession(int ProcessId, IReadOnlyList<string> CommandLine, string LogPath);

/// <summary>criu as save and restore use it: found and version-gated, a dump waited for, a restore started detached.</summary>
internal interface ICriuRunner
{
    Task<CriuTool> LocateAsync(string? requested, CancellationToken cancellationToken);

    /// <summary>Runs criu dump; fails with CriuDumpFailed carrying the CRIU log excerpt.</summary>
    Task DumpAsync(CriuTool criu, CriuOptions options, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Starts criu restore inside <paramref name="place"/>, detached in a session of its own whose output goes to
    /// <paramref name="outputFile"/>; the PID is recorded in <paramref name="pidFile"/>.
    /// </summary>
    Task<CriuSession> StartRestoreAsync(CriuTool criu, CriuOptions options, RestoreNamespace place, string pidFile, string outputFile, CancellationToken cancellationToken);
}
