using System.Formats.Tar;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class IntegrityTests
{
    [Fact]
    public void File_hashes_are_standard_xxh128_in_canonical_hex()
    {
        var empty = Path.GetTempFileName();
        try
        {
            // The XXH128 test vector of the empty input (xxHash's own xxhsum prints this).
            Assert.Equal("99aa06d3014798d86001c324468d497f", FileHash.Of(empty, CancellationToken.None));
        }
        finally
        {
            File.Delete(empty);
        }
    }

    [Theory]
    [InlineData("pages-1.img")]
    [InlineData("core-4100.img")]
    public async Task A_flipped_byte_in_an_image_is_corrupt_before_criu_starts_naming_the_file(string image)
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.FlipByte(Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), image));

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions()));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Contains($"images/{image} has XXH128", failure.Message);
        Assert.DoesNotContain("start-restore", world.Calls);
        Assert.False(Directory.Exists(world.Registry.ReplicasDirectory));
    }

    [Fact]
    public async Task An_image_of_several_pieces_restores_whole_and_is_corrupt_with_a_byte_flipped_in_its_last_piece()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var pages = Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img");
        var bytes = new byte[FileHash.PieceSize + 4096];
        new Random(1).NextBytes(bytes);
        File.WriteAllBytes(pages, bytes);
        CheckpointTestFiles.RewriteManifest(checkpoint, m =>
        {
            var image = m.Images.Single(i => i.Path == "pages-1.img");
            m.ImageBytes += bytes.Length - image.Size;
            image.Size = bytes.Length;
            image.Hash = FileHash.Of(pages, CancellationToken.None);
        });

        Assert.Null((await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Failure);

        bytes[^100] ^= 0xff;
        File.WriteAllBytes(pages, bytes);
        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions()));
        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Contains("images/pages-1.img has XXH128", failure.Message);
    }

    [Fact]
    public async Task Skip_verify_restores_without_the_hashes_but_still_refuses_a_wrong_size()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var pages = Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img");
        CheckpointTestFiles.FlipByte(pages);

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions { SkipVerify = true }))[0];
        Assert.Null(outcome.Failure);

        File.AppendAllText(pages, "x");
        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions { SkipVerify = true }));
        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Contains("images/pages-1.img is 4097 bytes", failure.Message);
    }

    [Fact]
    public async Task A_replicas_log_has_the_mode_the_engine_log_had_at_the_dump_while_the_snapshot_is_private()
    {
        using var world = new CheckpointWorld();
        const UnixFileMode dumped = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
        File.SetUnixFileMode(new RunDirectory(world.Engine.RunDirectory).LogFile, dumped);
        var checkpoint = await world.SaveAsync();

        var replica = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Engine!;

        Assert.Equal((int)dumped, checkpoint.Manifest.LogMode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(CheckpointStore.LogSnapshotPath(checkpoint.Path)));
        Assert.Equal(dumped, File.GetUnixFileMode(new RunDirectory(replica.RunDirectory).LogFile));
    }

    [Fact]
    public async Task A_test_of_a_checkpoint_lists_every_problem_with_its_file()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var good = await CheckpointVerifier.TestAsync(checkpoint.Path, TimeProvider.System, CancellationToken.None);
        CheckpointTestFiles.FlipByte(Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img"));
        File.Delete(Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "core-4100.img"));

        var bad = await CheckpointVerifier.TestAsync(checkpoint.Path, TimeProvider.System, CancellationToken.None);

        Assert.True(good.Valid);
        Assert.Equal(new[] { "engine.log", "images/core-4100.img", "images/pages-1.img" }, good.Files);
        Assert.Equal(4096 + 512 + checkpoint.Manifest.LogSizeAtDump, good.Bytes);
        Assert.False(bad.Valid);
        Assert.Equal(2, bad.Problems.Count);
        Assert.Contains(bad.Problems, p => p.StartsWith("images/core-4100.img is missing", StringComparison.Ordinal));
        Assert.Contains(bad.Problems, p => p.StartsWith("images/pages-1.img has XXH128", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_test_of_a_checkpoint_others_could_write_reports_it_insecure_without_reading_it()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var pages = Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img");
        File.SetUnixFileMode(pages, File.GetUnixFileMode(pages) | UnixFileMode.OtherWrite);

        var result = await CheckpointVerifier.TestAsync(checkpoint.Path, TimeProvider.System, CancellationToken.None);

        Assert.False(result.Valid);
        Assert.Equal(0, result.Bytes);
        Assert.Contains("pages-1.img is writable by group or others", Assert.Single(result.Problems));
    }

    [Fact]
    public async Task The_interpreter_of_a_restore_is_the_callers_never_the_manifests()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.RewriteManifest(checkpoint, m =>
        {
            m.Host.Python = "/tmp/attacker/python";
            m.Spec = m.Spec with { Python = "/tmp/attacker/python" };
        });
        var python = Path.Combine(world.Root, "python3");
        File.WriteAllText(python, "#!/bin/sh\n");
        File.SetUnixFileMode(python, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions { PythonPath = python }))[0];

        Assert.Null(outcome.Failure);
        Assert.Equal(python, outcome.Engine!.Record.Python);
        Assert.Equal(python, outcome.Engine.Record.Spec.Python);
        var namespaceScript = world.Criu.CommandLines.Last();
        Assert.Contains(python, namespaceScript);
        Assert.DoesNotContain(namespaceScript, a => a.Contains("attacker", StringComparison.Ordinal));
    }
}
