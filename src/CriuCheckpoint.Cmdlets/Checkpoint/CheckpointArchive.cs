using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The layout of a checkpoint archive: one tar stream of regular files, manifest.json first (so an import judges the
/// manifest before it writes anything), then engine.log, then images/&lt;name&gt; in the manifest's order. Nothing
/// else: no folders, no links, no other names; each file has the size and XXH128 the manifest records.
/// </summary>
internal static class CheckpointArchive
{
    public const string ManifestEntry = CheckpointManifest.FileName;
    public const string LogEntry = "engine.log";
    public const string ImagesPrefix = "images/";

    /// <summary>The files after the manifest, in archive order: entry name, path inside the checkpoint, size, hash.</summary>
    public static IReadOnlyList<ArchiveFile> Files(CheckpointManifest manifest) =>
        manifest.Images.Select(i => new ArchiveFile(ImagesPrefix + i.Path, Path.Combine("images", i.Path), i.Size, i.Hash))
            .Prepend(new ArchiveFile(LogEntry, LogEntry, manifest.LogSizeAtDump, manifest.LogHash))
            .ToList();

    public static CriuCheckpointException Corrupt(string archive, string why) =>
        new(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData, $"The checkpoint archive {archive} is damaged: {why}. Nothing was imported.", archive);

    /// <summary>Reports bytes done so far under one activity, at most every 1% and at the end.</summary>
    public sealed class ByteProgress
    {
        private readonly IOperationObserver observer;
        private readonly string activity;
        private readonly long total;
        private long done;
        private int lastPercent = -1;

        public ByteProgress(IOperationObserver observer, string activity, long total)
        {
            this.observer = observer;
            this.activity = activity;
            this.total = Math.Max(total, 1);
        }

        public void Add(long bytes, string file)
        {
            done += bytes;
            var percent = (int)(done * 100 / total);
            if (percent != lastPercent)
            {
                lastPercent = percent;
                observer.Progress(activity, $"{done >> 20} of {total >> 20} MiB ({file})", percent);
            }
        }
    }
}

internal sealed record ArchiveFile(string EntryName, string RelativePath, long Size, string Hash);
