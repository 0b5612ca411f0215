using System.Diagnostics;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The ownership and path rules of stores and checkpoints, on a real tree under the temporary folder.</summary>
public sealed class StoreTrustTests : IDisposable
{
    private const uint Me = 1000;
    private readonly string root = Directory.CreateTempSubdirectory("criu-trust-").FullName;

    public StoreTrustTests()
    {
        Checkpoint = Path.Combine(root, "store", "0123456789abcdef");
        Directory.CreateDirectory(Path.Combine(Checkpoint, "images"));
        File.WriteAllText(Path.Combine(Checkpoint, "manifest.json"), "{}");
        File.WriteAllText(Path.Combine(Checkpoint, "images", "pages-1.img"), "pages");
        MakePrivate(root);
    }

    private string Checkpoint { get; }

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Theory]
    [InlineData(0u, 0b111_101_101u, null)]
    [InlineData(Me, 0b111_000_000u, null)]
    [InlineData(0u, 0b001_111_111_111u, null)]
    [InlineData(0u, 0b111_111_111u, "writable by group or others")]
    [InlineData(0u, 0b111_111_101u, "writable by group or others")]
    [InlineData(65534u, 0b111_101_101u, "uid 65534")]
    [InlineData(65534u, 0b001_111_111_111u, "uid 65534")]
    public void DirectoriesAboveAreRootsOrTheCallersAndWritableByNobodyElseUnlessSticky(uint uid, uint mode, string? problem)
    {
        var found = StoreTrust.ChainProblem(new EntryStat(uid, 0x4000 | mode), Me);
        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found);
        }
    }

    [Theory]
    [InlineData(0x8000u | 0b110_000_000u, Me, null)]
    [InlineData(0x4000u | 0b111_000_000u, Me, null)]
    [InlineData(0x8000u | 0b110_000_000u, 0u, "not by the caller")]
    [InlineData(0x8000u | 0b110_100_100u, Me, null)]
    [InlineData(0x8000u | 0b110_000_010u, Me, "writable by group or others")]
    [InlineData(0xa000u | 0b111_111_111u, Me, "symbolic link")]
    [InlineData(0x1000u | 0b110_000_000u, Me, "not a regular file")]
    [InlineData(0x2000u | 0b110_000_000u, Me, "not a regular file")]
    public void EntriesOfACheckpointAreTheCallersPlainFiles(uint mode, uint uid, string? problem)
    {
        var found = StoreTrust.EntryProblem(new EntryStat(uid, mode), Me);
        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found);
        }
    }

    [Fact]
    public void TheCheckpointOpenedIsTheOneChecked()
    {
        using var trusted = StoreTrust.OpenCheckpoint(Checkpoint);
        Directory.Move(Checkpoint, Checkpoint + "-moved");
        Directory.CreateDirectory(Path.Combine(Checkpoint, "images"));
        File.WriteAllText(Path.Combine(Checkpoint, "planted.json"), "{}");

        Assert.Equal(new[] { "pages-1.img" }, DirectoryChain.Names(trusted.Images));
        Assert.True(File.Exists(Path.Combine(DirectoryChain.DescriptorPath(trusted.Images), "pages-1.img")));
        Assert.False(File.Exists(Path.Combine(trusted.ReadPath, "planted.json")));
        Assert.True(Directory.Exists(CheckpointStore.ImagesPath(trusted.ReadPath)));
    }

    [Fact]
    public void AGroupWritableFolderOnTheWayIsRefused()
    {
        File.SetUnixFileMode(Path.Combine(root, "store"), (UnixFileMode)0b111_111_000);
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Checkpoint).Dispose(), Path.Combine(root, "store"), "writable by group");
        AssertInsecure(() => StoreTrust.EnsureStore(Path.Combine(root, "store")), Path.Combine(root, "store"), "writable by group");
    }

    [Fact]
    public void ASaveCreatesNoStoreUnderAFolderOthersCanWrite()
    {
        var open = Path.Combine(root, "open");
        Directory.CreateDirectory(open);
        File.SetUnixFileMode(open, (UnixFileMode)0b111_111_111);
        var store = new CheckpointStore(Path.Combine(open, "a", "store"));

        AssertInsecure(store.EnsureExists, open, "writable by group or others");
        Assert.False(Directory.Exists(Path.Combine(open, "a")));
    }

    [Fact]
    public void AFolderOfAnotherOwnerOnTheWayIsRefused()
    {
        Chown(root);
        AssertInsecure(() => StoreTrust.EnsureStore(Path.Combine(root, "store")), root, "uid 65534");
    }

    [Fact]
    public void ACheckpointFileOfAnotherOwnerIsRefused()
    {
        Chown(Path.Combine(Checkpoint, "images", "pages-1.img"));
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Checkpoint).Dispose(), "pages-1.img", "uid 65534");
    }

    [Fact]
    public void ASymlinkOnTheWayIsRefused()
    {
        var link = Path.Combine(root, "link");
        File.CreateSymbolicLink(link, Path.Combine(root, "store"));
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Path.Combine(link, "0123456789abcdef")).Dispose(), link, "symbolic link");
        AssertInsecure(() => StoreTrust.EnsureStore(link), link, "symbolic link");
    }

    [Fact]
    public void ACheckpointThatIsASymlinkIsRefused()
    {
        Directory.Move(Checkpoint, Checkpoint + "-real");
        File.CreateSymbolicLink(Checkpoint, Checkpoint + "-real");
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Checkpoint).Dispose(), Checkpoint, "symbolic link");
    }

    [Fact]
    public void ASymlinkInsideTheCheckpointIsRefused()
    {
        File.CreateSymbolicLink(Path.Combine(Checkpoint, "images", "core-1.img"), "/etc/passwd");
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Checkpoint).Dispose(), "core-1.img", "symbolic link");
    }

    [Fact]
    public void AFifoInsideTheCheckpointIsRefused()
    {
        Fifo.Create(Path.Combine(Checkpoint, "images", "pipe.img"));
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Checkpoint).Dispose(), "pipe.img", "not a regular file");
    }

    [Fact]
    public void ACheckpointGoneMidWayIsInsecureNotARawError()
    {
        Directory.Delete(Path.Combine(Checkpoint, "images"), recursive: true);
        AssertInsecure(() => StoreTrust.OpenCheckpoint(Checkpoint).Dispose(), "images", "No such file");
    }

    private static void AssertInsecure(Action action, string named, string why)
    {
        var e = Assert.Throws<CriuCheckpointException>(action);
        Assert.Equal(ErrorIds.CheckpointInsecure, e.ErrorId);
        Assert.Contains(named, e.Message);
        Assert.Contains(why, e.Message);
    }

    private static void Chown(string path)
    {
        using var chown = Process.Start("chown", new[] { "65534", path });
        chown.WaitForExit();
        Assert.Equal(0, chown.ExitCode);
    }

    private static void MakePrivate(string directory)
    {
        File.SetUnixFileMode(directory, (UnixFileMode)0b111_000_000);
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(entry, (UnixFileMode)(Directory.Exists(entry) ? 0b111_000_000 : 0b110_000_000));
        }
    }
}
