using System.Formats.Tar;
using System.Security.Cryptography;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Writes a checkpoint as one archive (<see cref="CheckpointArchive"/>) to a file. The checkpoint is verified first,
/// so a damaged one is never shipped; the archive is written under a temporary name beside the destination and
/// renamed, so the destination holds a whole archive or what it held before.
/// </summary>
internal sealed class CheckpointExporter
{
    private readonly CheckpointServices services;
    private readonly IOperationObserver observer;

    public CheckpointExporter(CheckpointServices services, IOperationObserver observer)
    {
        this.services = services;
        this.observer = observer;
    }

    public async Task<FileInfo> ExportAsync(string checkpointPath, string destination, CancellationToken cancellationToken)
    {
        // Checked and read as a restore does (trusted, the manifest on disk validated, every hash): what is shipped is
        // what a restore here would accept, and a planted symlink cannot make root copy another file into the archive.
        using var trusted = StoreTrust.OpenCheckpoint(checkpointPath, "export");
        var checkpoint = CheckpointStore.Open(trusted);
        var verification = await CheckpointVerifier.VerifyAsync(checkpoint, trusted.ReadPath, hashes: true, services.Clock, cancellationToken).ConfigureAwait(false);
        if (!verification.Valid)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData,
                $"Checkpoint {checkpoint.Path} is damaged: {verification.Problems[0]}. Nothing was exported.", checkpoint.Path,
                details: string.Join(Environment.NewLine, verification.Problems));
        }

        var partial = $"{destination}.partial-{Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}";
        try
        {
            await WriteAsync(checkpoint, trusted.ReadPath, partial, cancellationToken).ConfigureAwait(false);
            File.Move(partial, destination, overwrite: true);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }

        return new FileInfo(destination);
    }

    private async Task WriteAsync(EngineCheckpoint checkpoint, string readPath, string archive, CancellationToken cancellationToken)
    {
        var files = CheckpointArchive.Files(checkpoint.Manifest);
        var progress = new CheckpointArchive.ByteProgress(observer, $"Exporting {checkpoint.Path} to {archive}", files.Sum(f => f.Size));
        await using var output = CheckpointStore.CreatePrivateFile(archive);
        await using var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: false);
        await WriteFileAsync(writer, CheckpointArchive.ManifestEntry, CheckpointStore.ManifestPath(readPath), cancellationToken).ConfigureAwait(false);
        foreach (var file in files)
        {
            await WriteFileAsync(writer, file.EntryName, Path.Combine(readPath, file.RelativePath), cancellationToken).ConfigureAwait(false);
            progress.Add(file.Size, file.EntryName);
        }
    }

    private static async Task WriteFileAsync(TarWriter writer, string entryName, string path, CancellationToken cancellationToken)
    {
        await using var input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var entry = new PaxTarEntry(TarEntryType.RegularFile, entryName)
        {
            DataStream = input,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            ModificationTime = File.GetLastWriteTimeUtc(path),
        };
        await writer.WriteEntryAsync(entry, cancellationToken).ConfigureAwait(false);
    }
}
