using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Compares a checkpoint's files with its manifest: each must exist with the recorded size (CRIU 4.2 hangs on a
/// truncated pages image) and, unless only sizes are asked for, the recorded XXH128 (CRIU restores whatever a damaged
/// image says). Files are hashed on every core at once; a restore does it before criu starts, and the read warms the
/// page cache criu reads next.
/// </summary>
internal static class CheckpointVerifier
{
    public const string LogName = "engine.log";

    /// <summary>Reads the files under <paramref name="readPath"/>: the checkpoint's directory, or the descriptor path of it.</summary>
    public static async Task<CheckpointVerification> VerifyAsync(EngineCheckpoint checkpoint, string readPath, bool hashes, TimeProvider clock, CancellationToken cancellationToken)
    {
        var started = clock.GetTimestamp();
        var expected = Expected(checkpoint.Manifest, readPath);
        var problems = new List<string>();
        var sized = new List<ExpectedFile>();
        foreach (var file in expected)
        {
            var size = File.Exists(file.FullPath) ? new FileInfo(file.FullPath).Length : -1;
            if (size == file.Size)
            {
                sized.Add(file);
            }
            else
            {
                problems.Add($"{file.Name} is {(size < 0 ? "missing" : $"{size} bytes")}; the manifest says {file.Size} bytes");
            }
        }

        if (hashes)
        {
            var actual = await FileHash.OfAllAsync(sized.Select(f => f.FullPath), cancellationToken).ConfigureAwait(false);
            problems.AddRange(sized.Where(f => actual[f.FullPath] != f.Hash)
                .Select(f => $"{f.Name} has XXH128 {actual[f.FullPath]}; the manifest says {f.Hash}: its bytes changed since the save"));
        }

        return new CheckpointVerification
        {
            Path = checkpoint.Path,
            Files = expected.Select(f => f.Name).ToArray(),
            Bytes = hashes ? sized.Sum(f => f.Size) : 0,
            Seconds = clock.GetElapsedTime(started).TotalSeconds,
            Problems = problems,
        };
    }

    /// <summary>
    /// Test-EngineCheckpoint: what a restore would refuse before criu runs, as problems of the result rather than
    /// failures: a checkpoint others could have written (CheckpointInsecure), a manifest that cannot be opened, a file
    /// of another size or hash. Read through the descriptor that was checked, as a restore reads it.
    /// </summary>
    public static async Task<CheckpointVerification> TestAsync(string checkpointPath, TimeProvider clock, CancellationToken cancellationToken)
    {
        TrustedCheckpoint trusted;
        EngineCheckpoint checkpoint;
        try
        {
            trusted = StoreTrust.OpenCheckpoint(checkpointPath, "trust");
        }
        catch (CriuCheckpointException e) when (e.ErrorId is ErrorIds.CheckpointInsecure)
        {
            return Unopened(checkpointPath, checkpointPath, e);
        }

        using (trusted)
        {
            try
            {
                checkpoint = CheckpointStore.Open(trusted);
            }
            catch (CriuCheckpointException e) when (e.ErrorId is ErrorIds.CheckpointCorrupt or ErrorIds.CheckpointIncompatible)
            {
                return Unopened(checkpointPath, CheckpointManifest.FileName, e);
            }

            return await VerifyAsync(checkpoint, trusted.ReadPath, hashes: true, clock, cancellationToken).ConfigureAwait(false);
        }
    }

    private static CheckpointVerification Unopened(string checkpointPath, string file, CriuCheckpointException e) =>
        new() { Path = checkpointPath, Files = new[] { file }, Problems = new[] { e.Message } };

    /// <summary>The log snapshot and every image, as the manifest records them.</summary>
    private static List<ExpectedFile> Expected(CheckpointManifest manifest, string readPath)
    {
        var images = CheckpointStore.ImagesPath(readPath);
        return manifest.Images
            .Select(i => new ExpectedFile($"images/{i.Path}", Path.Combine(images, i.Path), i.Size, i.Hash))
            .Prepend(new ExpectedFile(LogName, CheckpointStore.LogSnapshotPath(readPath), manifest.LogSizeAtDump, manifest.LogHash))
            .ToList();
    }

    private sealed record ExpectedFile(string Name, string FullPath, long Size, string Hash);
}
