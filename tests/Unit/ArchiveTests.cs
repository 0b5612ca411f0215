using System.Formats.Tar;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class ArchiveTests
{
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateFolder = PrivateFile | UnixFileMode.UserExecute;

    [Fact]
    public async Task An_exported_checkpoint_imports_into_another_store_file_for_file_and_private()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var archive = await Export(world, checkpoint);
        var other = new CheckpointStore(Path.Combine(world.Root, "other-store"));

        var imported = await Import(world, archive, other);

        Assert.Equal(other.CheckpointPath(checkpoint.ConfigHash), imported.Path);
        Assert.Equal(new[] { "manifest.json", "engine.log", "images/core-4100.img", "images/pages-1.img" }, EntryNames(archive));
        foreach (var file in new[] { "manifest.json", "engine.log", "images/core-4100.img", "images/pages-1.img" })
        {
            Assert.Equal(File.ReadAllBytes(Path.Combine(checkpoint.Path, file)), File.ReadAllBytes(Path.Combine(imported.Path, file)));
            Assert.Equal(PrivateFile, File.GetUnixFileMode(Path.Combine(imported.Path, file)));
        }

        Assert.All(new[] { other.Path, imported.Path, CheckpointStore.ImagesPath(imported.Path) }, d => Assert.Equal(PrivateFolder, File.GetUnixFileMode(d)));
        Assert.True((await CheckpointVerifier.TestAsync(imported.Path, TimeProvider.System, CancellationToken.None)).Valid);
        Assert.Equal(PrivateFile, File.GetUnixFileMode(archive));
    }

    [Fact]
    public async Task A_damaged_checkpoint_is_not_exported()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.FlipByte(Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img"));
        var destination = Path.Combine(world.Root, "out.tar");

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CheckpointExporter(world.Services, world.Observer).ExportAsync(checkpoint.Path, destination, CancellationToken.None));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Empty(Directory.GetFiles(world.Root, "out.tar*"));
    }

    public static TheoryData<string> Damages => new()
    {
        "a flipped byte in an image",
        "an image cut short",
        "a symbolic link",
        "a name outside the checkpoint",
        "an entry the manifest does not list",
        "a folder",
        "an image missing",
        "an image twice",
        "no manifest first",
        "an archive cut short",
        "not a tar file",
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task A_damaged_archive_is_refused_as_corrupt_and_leaves_nothing_in_the_store(string damage)
    {
        using var world = new CheckpointWorld();
        var archive = await Export(world, await world.SaveAsync());
        Damage(archive, damage);
        var other = new CheckpointStore(Path.Combine(world.Root, "other-store"));

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Import(world, archive, other));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Empty(Directory.Exists(other.Path) ? Directory.GetFileSystemEntries(other.Path) : Array.Empty<string>());
        Assert.False(File.Exists(Path.Combine(world.Root, "escaped")));
    }

    [Fact]
    public async Task An_archive_that_does_not_fit_this_host_is_refused_unless_forced()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.Host.Kernel = "5.10.0");
        var archive = await Export(world, checkpoint);
        var other = new CheckpointStore(Path.Combine(world.Root, "other-store"));

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Import(world, archive, other));
        Assert.Equal(ErrorIds.CheckpointIncompatible, failure.ErrorId);
        Assert.Contains("Kernel: checkpoint has '5.10.0'", failure.Message);
        Assert.False(Directory.Exists(other.Path));

        var imported = await Import(world, archive, other, force: true);
        Assert.Equal("5.10.0", imported.Manifest.Host.Kernel);
        Assert.Contains(world.Observer.Warnings, w => w.Contains("Kernel", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Import_reports_its_progress_in_bytes()
    {
        using var world = new CheckpointWorld();
        var archive = await Export(world, await world.SaveAsync());
        world.Observer.Steps.Clear();

        await Import(world, archive, new CheckpointStore(Path.Combine(world.Root, "other-store")));

        Assert.Contains(world.Observer.Steps, s => s.StartsWith("0 of 0 MiB (images/pages-1.img)", StringComparison.Ordinal));
    }

    private static void Damage(string archive, string damage)
    {
        var entries = ReadAll(archive);
        var pages = entries.FindIndex(e => e.Name == "images/pages-1.img");
        switch (damage)
        {
            case "a flipped byte in an image": entries[pages].Data[100] ^= 1; break;
            case "an image cut short": entries[pages] = entries[pages] with { Data = entries[pages].Data[..100] }; break;
            case "a symbolic link": entries[pages] = entries[pages] with { Type = TarEntryType.SymbolicLink, Link = "/etc/passwd", Data = Array.Empty<byte>() }; break;
            case "a name outside the checkpoint": entries[pages] = entries[pages] with { Name = "images/../../../escaped" }; break;
            case "an entry the manifest does not list": entries.Add(new("images/extra.img", TarEntryType.RegularFile, new byte[8], null)); break;
            case "a folder": entries.Insert(1, new("images/", TarEntryType.Directory, Array.Empty<byte>(), null)); break;
            case "an image missing": entries.RemoveAt(pages); break;
            case "an image twice": entries.Add(entries[pages]); break;
            case "no manifest first": entries.Reverse(); break;
            case "an archive cut short":
                Write(archive, entries);
                using (var stream = File.Open(archive, FileMode.Open))
                {
                    stream.SetLength(stream.Length - 3000);
                }

                return;
            case "not a tar file": File.WriteAllText(archive, "this is not an archive"); return;
            default: throw new ArgumentException(damage);
        }

        Write(archive, entries);
    }

    private sealed record Entry(string Name, TarEntryType Type, byte[] Data, string? Link);

    private static List<Entry> ReadAll(string archive)
    {
        using var reader = new TarReader(File.OpenRead(archive));
        var entries = new List<Entry>();
        while (reader.GetNextEntry() is { } entry)
        {
            using var data = new MemoryStream();
            entry.DataStream?.CopyTo(data);
            entries.Add(new(entry.Name, entry.EntryType, data.ToArray(), null));
        }

        return entries;
    }

    private static void Write(string archive, List<Entry> entries)
    {
        using var writer = new TarWriter(File.Create(archive), TarEntryFormat.Pax);
        foreach (var e in entries)
        {
            var entry = new PaxTarEntry(e.Type, e.Name);
            if (e.Link is not null)
            {
                entry.LinkName = e.Link;
            }

            if (e.Type == TarEntryType.RegularFile)
            {
                entry.DataStream = new MemoryStream(e.Data);
            }

            writer.WriteEntry(entry);
        }
    }

    private static IEnumerable<string> EntryNames(string archive) => ReadAll(archive).Select(e => e.Name);

    private static async Task<string> Export(CheckpointWorld world, EngineCheckpoint checkpoint) =>
        (await new CheckpointExporter(world.Services, world.Observer).ExportAsync(checkpoint.Path, Path.Combine(world.Root, "checkpoint.tar"), CancellationToken.None)).FullName;

    private static Task<EngineCheckpoint> Import(CheckpointWorld world, string archive, CheckpointStore store, bool force = false) =>
        new CheckpointImporter(world.Services, world.Observer).ImportAsync(archive, store, force, CancellationToken.None);
}
