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

    /// <summary>The first criu with --image-io-mode; an older one refuses the flag as unknown.</summary>
    public static readonly Version ImageIoModeVersion = new(4, 3);

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

    /// <summary>
    /// Read the pages image with O_DIRECT (restore only), which criu 4.3's restorer pairs with native AIO reads: past the
    /// page cache, so faster only for an image the cache does not hold.
    /// </summary>
    public bool DirectImageReads { get; init; }

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

    /// <summary>A restore by <paramref name="criuVersion"/>; direct reads are asked only of a criu that has them.</summary>
    public static CriuOptions ForRestore(string imagesDirectory, string replicaDirectory, Version criuVersion, bool directImageReads) => new()
    {
        Action = CriuAction.Restore,
        ImagesDirectory = imagesDirectory,
        WorkDirectory = replicaDirectory,
        LogFile = RestoreLog,
        DirectImageReads = directImageReads && SupportsImageIoMode(criuVersion),
    };

    public static bool SupportsImageIoMode(Version criuVersion) => criuVersion >= ImageIoModeVersion;

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

        if (DirectImageReads)
        {
            arguments.AddRange(new[] { "--image-io-mode", "direct" });
        }

        return arguments;
    }
}
