using System.Formats.Tar;
using System.Text.Json;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Unpacks a checkpoint archive into a store. Every entry is untrusted: the manifest is validated before anything is
/// written, then only regular files with the names and sizes it lists are accepted, each hashed as it is written into
/// a private staging directory (files 0600, folders 0700), which one rename publishes. Anything else, a damaged archive
/// or a Ctrl+C deletes the staging directory: the store gains a whole checkpoint or nothing.
/// </summary>
internal sealed class CheckpointImporter
{
    /// <summary>Far above any real manifest (a few hundred KiB with every mapped file listed), so reading one is bounded.</summary>
    private const int MaxManifestBytes = 16 << 20;
    private const int BufferSize = 1 << 20;

    private readonly CheckpointServices services;
    private readonly IOperationObserver observer;

    public CheckpointImporter(CheckpointServices services, IOperationObserver observer)
    {
        this.services = services;
        this.observer = observer;
    }

    /// <summary>Imports the archive; with <paramref name="force"/> a checkpoint that does not fit this host is imported with warnings.</summary>
    public async Task<EngineCheckpoint> ImportAsync(string archive, CheckpointStore store, bool force, CancellationToken cancellationToken)
    {
        await using var input = new FileStream(archive, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.SequentialScan);
        await using var reader = new TarReader(input);
        var (manifest, manifestBytes) = await ReadManifestAsync(reader, archive, cancellationToken).ConfigureAwait(false);
        var host = await HostComparison.ForHostAsync(services, null, cancellationToken).ConfigureAwait(false);
        CheckFits(host.Issues(manifest), archive, force);
        if (store.Find(manifest.ConfigHash) is { } existing)
        {
            observer.Warning($"{existing.Path} already holds a checkpoint of this configuration ({manifest.ConfigHash}); nothing was imported and that checkpoint is returned.");
            return host.Compare(existing);
        }

        var staging = store.CreateStaging(manifest.ConfigHash);
        try
        {
            await UnpackAsync(reader, manifest, archive, staging, cancellationToken).ConfigureAwait(false);
            await using (var file = CheckpointStore.CreatePrivateFile(CheckpointStore.ManifestPath(staging)))
            {
                await file.WriteAsync(manifestBytes, cancellationToken).ConfigureAwait(false);
            }

            if (!store.TryPublish(staging, manifest.ConfigHash))
            {
                observer.Warning($"Another import or save published {store.CheckpointPath(manifest.ConfigHash)} first; that checkpoint is returned.");
                CheckpointStore.DeleteStaging(staging);
            }
        }
        catch
        {
            CheckpointStore.DeleteStaging(staging);
            throw;
        }

        return host.Compare(CheckpointStore.Open(store.CheckpointPath(manifest.ConfigHash)));
    }

    /// <summary>The first entry, which must be the manifest, read whole and validated before anything is written.</summary>
    private static async Task<(CheckpointManifest Manifest, byte[] Bytes)> ReadManifestAsync(TarReader reader, string archive, CancellationToken cancellationToken)
    {
        var entry = await NextAsync(reader, archive, cancellationToken).ConfigureAwait(false)
            ?? throw CheckpointArchive.Corrupt(archive, "it holds no file");
        if (!IsRegularFile(entry) || entry.Name != CheckpointArchive.ManifestEntry || entry.Length > MaxManifestBytes)
        {
            throw CheckpointArchive.Corrupt(archive, $"its first entry is {Describe(entry)}, not {CheckpointArchive.ManifestEntry} of at most {MaxManifestBytes >> 20} MiB");
        }

        var bytes = new byte[entry.Length];
        await ReadExactlyAsync(entry, bytes, archive, cancellationToken).ConfigureAwait(false);
        CheckpointManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(bytes, RunDirectory.Json)
                ?? throw CheckpointArchive.Corrupt(archive, "its manifest is empty");
        }
        catch (JsonException e)
        {
            throw CheckpointArchive.Corrupt(archive, $"its manifest is not valid JSON ({e.Message})");
        }

        ManifestValidation.Validate(manifest, archive);
        return (manifest, bytes);
    }

    /// <summary>The same comparison a restore makes (Compatibility.Check): differences fail unless forced.</summary>
    private void CheckFits(IReadOnlyList<CompatibilityIssue> issues, string archive, bool force)
    {
        if (issues.Count > 0 && !force)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointIncompatible, FailureKind.InvalidOperation,
                $"The checkpoint in {archive} does not fit this host: {string.Join("; ", issues)}. Nothing was imported; use -Force to import anyway.", archive);
        }

        foreach (var issue in issues)
        {
            observer.Warning($"Importing despite a difference (-Force): {issue}.");
        }
    }

    /// <summary>Every file the manifest lists, once each, in any order, and nothing else.</summary>
    private async Task UnpackAsync(TarReader reader, CheckpointManifest manifest, string archive, string staging, CancellationToken cancellationToken)
    {
        var expected = CheckpointArchive.Files(manifest).ToDictionary(f => f.EntryName, StringComparer.Ordinal);
        var progress = new CheckpointArchive.ByteProgress(observer, $"Importing {archive} into {Path.GetDirectoryName(staging)}", expected.Values.Sum(f => f.Size));
        while (await NextAsync(reader, archive, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            if (!IsRegularFile(entry) || !expected.Remove(entry.Name, out var file))
            {
                throw CheckpointArchive.Corrupt(archive, $"it holds {Describe(entry)}, which is no file of this checkpoint or comes twice");
            }

            if (entry.Length != file.Size)
            {
                throw CheckpointArchive.Corrupt(archive, $"{entry.Name} is {entry.Length} bytes; the manifest says {file.Size} bytes");
            }

            await WriteEntryAsync(entry, file, Path.Combine(staging, file.RelativePath), archive, progress, cancellationToken).ConfigureAwait(false);
        }

        if (expected.Count > 0)
        {
            throw CheckpointArchive.Corrupt(archive, $"it lacks {string.Join(", ", expected.Keys)}");
        }
    }

    private static async Task WriteEntryAsync(TarEntry entry, ArchiveFile file, string path, string archive, CheckpointArchive.ByteProgress progress,
        CancellationToken cancellationToken)
    {
        var hasher = new PiecewiseHash();
        var buffer = new byte[BufferSize];
        await using (var output = CheckpointStore.CreatePrivateFile(path))
        {
            var remaining = file.Size;
            while (remaining > 0)
            {
                var read = await ReadAsync(entry, buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), archive, cancellationToken).ConfigureAwait(false);
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                hasher.Append(buffer.AsSpan(0, read));
                remaining -= read;
                progress.Add(read, entry.Name);
            }
        }

        var hash = hasher.ToHex();
        if (hash != file.Hash)
        {
            throw CheckpointArchive.Corrupt(archive, $"{entry.Name} has XXH128 {hash}; the manifest says {file.Hash}");
        }
    }

    private static async Task ReadExactlyAsync(TarEntry entry, byte[] buffer, string archive, CancellationToken cancellationToken)
    {
        for (var offset = 0; offset < buffer.Length;)
        {
            offset += await ReadAsync(entry, buffer.AsMemory(offset), archive, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads at least one byte of the entry's data; an archive that ends early is damaged.</summary>
    private static async Task<int> ReadAsync(TarEntry entry, Memory<byte> buffer, string archive, CancellationToken cancellationToken)
    {
        int read;
        try
        {
            read = entry.DataStream is { } data ? await data.ReadAsync(buffer, cancellationToken).ConfigureAwait(false) : 0;
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw CheckpointArchive.Corrupt(archive, $"{entry.Name} cannot be read ({e.Message})");
        }

        return read > 0 ? read : throw CheckpointArchive.Corrupt(archive, $"it ends inside {entry.Name}");
    }

    private static async Task<TarEntry?> NextAsync(TarReader reader, string archive, CancellationToken cancellationToken)
    {
        try
        {
            return await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or FormatException or ArgumentException)
        {
            throw CheckpointArchive.Corrupt(archive, $"it is not a tar archive of a checkpoint ({e.Message})");
        }
    }

    private static bool IsRegularFile(TarEntry entry) => entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile;

    private static string Describe(TarEntry entry) => $"{entry.EntryType} '{entry.Name}'";
}
