using System.Globalization;

namespace CriuCheckpoint.Checkpoint;

internal enum CriuAction
{
    Dump,
    Restore,
}

/// <summary>
/// One criu invocation as data. <see cref="ToArguments"/> is the only place that knows criu's flags, so adding an
/// option is a property and one line there.
/// </summary>
internal sealed record CriuOptions
{
    public const string DumpLog = "dump.log";
    public const string RestoreLog = "restore.log";

    public required CriuAction Action { get; init; }

    /// <summary>The root of the tree to dump (dump only).</summary>
    public int TreeProcessId { get; init; }

    /// <summary>Where the images are written (dump) or read from (restore).</summary>
    public required string ImagesDirectory { get; init; }

    /// <summary>criu's working directory, where relative paths such as the log file resolve.</summary>
    public required string WorkDirectory { get; init; }

    /// <summary>The log file, in <see cref="WorkDirectory"/> unless absolute.</summary>
    public required string LogFile { get; init; }

    /// <summary>4 records every step: what an error excerpt quotes.</summary>
    public int Verbosity { get; init; } = 4;

    /// <summary>Dump without ending the tree (-LeaveRunning).</summary>
    public bool LeaveRunning { get; init; }

    public string LogPath => Path.Combine(WorkDirectory, LogFile);

    public static CriuOptions ForDump(int rootProcessId, string imagesDirectory, bool leaveRunning) => new()
    {
        Action = CriuAction.Dump,
        TreeProcessId = rootProcessId,
        ImagesDirectory = imagesDirectory,
        WorkDirectory = imagesDirectory,
        LogFile = DumpLog,
        LeaveRunning = leaveRunning,
    };

    public static CriuOptions ForRestore(string imagesDirectory, string replicaDirectory) => new()
    {
        Action = CriuAction.Restore,
        ImagesDirectory = imagesDirectory,
        WorkDirectory = replicaDirectory,
        LogFile = RestoreLog,
    };

    /// <summary>The argv after the criu executable.</summary>
    public IReadOnlyList<string> ToArguments()
    {
        var arguments = new List<string> { Action == CriuAction.Dump ? "dump" : "restore" };
        if (Action == CriuAction.Dump)
        {
            arguments.AddRange(new[] { "-t", TreeProcessId.ToString(CultureInfo.InvariantCulture) });
        }

        arguments.AddRange(new[] { "-D", ImagesDirectory, "-W", WorkDirectory, $"-v{Verbosity}", "-o", LogFile });
        if (LeaveRunning)
        {
            arguments.Add("--leave-running");
        }

        return arguments;
    }
}
