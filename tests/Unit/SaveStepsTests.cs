using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Gpu;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class SaveStepsTests
{
    [Fact]
    public void Save_is_the_documented_steps_in_order()
    {
        Assert.Equal(new[] { "Preflight", "Prepare", "CheckpointCuda", "CheckSpace", "Dump", "HashImages", "WriteManifest", "Publish", "ResumeOrRetire" },
            CheckpointSaver.Steps.Select(s => s.Name));
    }

    [Fact]
    public async Task A_save_publishes_the_images_and_retires_the_dumped_engine()
    {
        using var world = new CheckpointWorld();
        var result = await Save(world);

        Assert.Null(result.Engine);
        Assert.Equal(world.Store.CheckpointPath(world.Engine.ConfigHash), result.Checkpoint.Path);
        var manifest = result.Checkpoint.Manifest;
        Assert.Equal(new[] { "core-4100.img", "pages-1.img" }, manifest.Images.Select(i => i.Path));
        Assert.Equal(4096 + 512, manifest.ImageBytes);
        Assert.Equal("engine started\nengine ready\n".Length, manifest.LogSizeAtDump);
        Assert.Null(manifest.Gpu);
        Assert.Empty(world.StagingDirectories());
        Assert.Equal(new[] { "privileges", "locate-criu", "ensure-serving", "prepare", "dump", "wait-exit", "forget" }, world.Calls);
        Assert.Equal(new[] { "preflight", "prepare", "canary", "criu-dump", "hash", "manifest", "publish" }, result.Checkpoint.Timings.Phases.Select(p => p.Key));
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task A_save_records_the_hash_of_every_image_and_of_the_log_snapshot()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await Save(world)).Checkpoint;

        var manifest = checkpoint.Manifest;
        var images = CheckpointStore.ImagesPath(checkpoint.Path);
        Assert.All(manifest.Images, i => Assert.Equal(FileHash.Of(Path.Combine(images, i.Path), CancellationToken.None), i.Hash));
        Assert.Equal(FileHash.Of(CheckpointStore.LogSnapshotPath(checkpoint.Path), CancellationToken.None), manifest.LogHash);
    }

    [Fact]
    public async Task A_checkpoint_of_another_manifest_schema_is_named_by_a_save_and_replaced_with_force()
    {
        using var world = new CheckpointWorld();
        var old = (await Save(world, new SaveOptions { LeaveRunning = true })).Checkpoint;
        CheckpointTestFiles.RewriteManifest(old, m => m.SchemaVersion = 1);

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world, new SaveOptions { LeaveRunning = true }));
        var replaced = await Save(world, new SaveOptions { LeaveRunning = true, Force = true });

        Assert.Equal(ErrorIds.CheckpointIncompatible, failure.ErrorId);
        Assert.Contains("Save-EngineCheckpoint -Force replaces it", failure.Message);
        Assert.Equal(CheckpointManifest.CurrentSchemaVersion, CheckpointStore.Open(replaced.Checkpoint.Path).Manifest.SchemaVersion);
    }

    [Fact]
    public async Task A_saved_checkpoint_is_readable_by_its_owner_only()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await Save(world)).Checkpoint;

        const UnixFileMode privateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        const UnixFileMode privateFolder = privateFile | UnixFileMode.UserExecute;
        Assert.Equal(privateFolder, File.GetUnixFileMode(world.Store.Path));
        Assert.Equal(privateFolder, File.GetUnixFileMode(checkpoint.Path));
        foreach (var entry in Directory.EnumerateFileSystemEntries(checkpoint.Path, "*", SearchOption.AllDirectories))
        {
            Assert.Equal(Directory.Exists(entry) ? privateFolder : privateFile, File.GetUnixFileMode(entry));
        }
    }

    [Fact]
    public async Task Leave_running_checkpoints_cuda_then_hands_the_gpu_state_back_and_resumes()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        var result = await Save(world, new SaveOptions { LeaveRunning = true });

        Assert.NotNull(result.Engine);
        Assert.Equal(CudaProcessState.Running, world.Cuda.StateOf(CheckpointWorld.CorePid));
        Assert.Equal(new[] { CheckpointWorld.CorePid }, result.Checkpoint.Manifest.Gpu!.ProcessIds);
        Assert.Equal("13.0", result.Checkpoint.Manifest.Gpu.CudaVersion);
        Assert.Equal(new[] { "dump", "open-fifo", "resume", "close-fifo", "hello" }, world.Calls.SkipWhile(c => c != "dump"));
        Assert.Contains("--leave-running", world.Criu.CommandLines.Single());
        Assert.Contains(result.Checkpoint.Timings.Phases, p => p.Key == CudaCheckpointCoordinator.RestorePhase);
        Assert.Contains(result.Checkpoint.Timings.Phases, p => p.Key == "resume");
    }

    [Fact]
    public async Task An_existing_checkpoint_is_the_result_and_nothing_is_prepared()
    {
        using var world = new CheckpointWorld();
        var first = await Save(world, new SaveOptions { LeaveRunning = true });
        world.Calls.Clear();

        var second = await Save(world);

        Assert.Equal(first.Checkpoint.Path, second.Checkpoint.Path);
        Assert.Same(world.Engine, second.Engine);
        Assert.DoesNotContain("prepare", world.Calls);
        Assert.Contains(world.Observer.Warnings, w => w.Contains("already holds a checkpoint"));
    }

    [Fact]
    public async Task A_failed_preflight_changes_nothing()
    {
        using var world = new CheckpointWorld();
        world.Fail = call => call == "privileges" ? CheckpointWorld.Failure(ErrorIds.InsufficientPrivilege) : null;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world));

        Assert.Equal(ErrorIds.InsufficientPrivilege, failure.ErrorId);
        Assert.Equal(new[] { "privileges" }, world.Calls);
        Assert.False(Directory.Exists(world.Store.Path));
    }

    [Fact]
    public async Task Too_little_space_for_the_released_engine_fails_before_the_dump_and_hands_everything_back()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        world.Cuda.OnCall = (call, _) => world.Calls.Add($"cuda-{call}");
        // The fake tree holds 2 x 100 MiB once released: room for 200 MiB is too little, for the estimate it is enough.
        world.Host.AvailableBytesNow = 200L << 20;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world));

        Assert.Equal(ErrorIds.InsufficientSpace, failure.ErrorId);
        Assert.Contains("needs about 226 MiB", failure.Message);
        Assert.DoesNotContain("dump", world.Calls);
        Assert.Equal(new[] { "cuda-restore", "cuda-unlock", "open-fifo", "resume", "close-fifo" },
            world.Calls.SkipWhile(c => c != "cuda-checkpoint").Skip(1));
        Assert.Empty(world.StagingDirectories());
    }

    [Fact]
    public async Task The_space_estimate_is_recorded_beside_the_image_size()
    {
        using var world = new CheckpointWorld();

        var result = await Save(world);

        Assert.Equal((200L << 20) + (10L << 20) + (16L << 20), result.Checkpoint.Manifest.EstimatedImageBytes);
    }

    [Fact]
    public async Task A_failed_prepare_resumes_the_engine_it_left_blocked()
    {
        using var world = new CheckpointWorld();
        world.Fail = call => call == "prepare" ? CheckpointWorld.Failure(ErrorIds.CheckpointPrepareFailed) : null;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world));

        Assert.Equal(ErrorIds.CheckpointPrepareFailed, failure.ErrorId);
        Assert.Equal(new[] { "prepare", "open-fifo", "resume", "close-fifo" }, world.Calls.SkipWhile(c => c != "prepare"));
        Assert.False(world.Engines.IsPrepared(world.Engine.Record));
    }

    [Fact]
    public async Task A_failed_cuda_checkpoint_is_rolled_back_by_the_coordinator_and_the_engine_resumed()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        world.Cuda.Fail = (call, _) => call == "checkpoint" ? new CudaCallException("cuCheckpointProcessCheckpoint", CheckpointWorld.CorePid, 2, "CUDA_ERROR_OUT_OF_MEMORY") : null;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world));

        Assert.Equal(ErrorIds.CudaCheckpointFailed, failure.ErrorId);
        Assert.Equal(CudaProcessState.Running, world.Cuda.StateOf(CheckpointWorld.CorePid));
        Assert.DoesNotContain("dump", world.Calls);
        Assert.Contains("resume", world.Calls);
        Assert.False(Directory.Exists(world.Store.Path) && world.StagingDirectories().Any());
    }

    [Theory]
    [InlineData("dump")]
    [InlineData("manifest")]
    [InlineData("publish")]
    public async Task A_failure_after_the_cuda_checkpoint_unwinds_staging_then_cuda_then_the_engine(string failingStep)
    {
        using var world = new CheckpointWorld(usesCuda: true);
        world.Fail = call => call == "dump" && failingStep == "dump" ? CheckpointWorld.Failure(ErrorIds.CriuDumpFailed) : null;
        var engineLog = Path.Combine(world.Engine.RunDirectory, "engine.log");
        world.Cuda.OnCall = (call, _) => world.Calls.Add($"cuda-{call}");
        if (failingStep == "manifest")
        {
            // The dump succeeded, then the log it must snapshot is gone.
            world.Criu.AfterDump = () => File.Delete(engineLog);
        }
        else if (failingStep == "publish")
        {
            // Something that is not a checkpoint directory holds the checkpoint's name.
            world.Criu.AfterDump = () => File.WriteAllText(world.Store.CheckpointPath(world.Engine.ConfigHash), "in the way");
        }

        await Assert.ThrowsAnyAsync<Exception>(() => Save(world, new SaveOptions { LeaveRunning = true }));

        Assert.Empty(world.StagingDirectories());
        Assert.False(Directory.Exists(world.Store.CheckpointPath(world.Engine.ConfigHash)));
        Assert.Equal(CudaProcessState.Running, world.Cuda.StateOf(CheckpointWorld.CorePid));
        Assert.Equal(new[] { "cuda-restore", "cuda-unlock", "open-fifo", "resume", "close-fifo" }, world.Calls.SkipWhile(c => c != "dump").Skip(1));
        Assert.False(world.Engines.IsPrepared(world.Engine.Record));
    }

    [Fact]
    public async Task A_failed_resume_after_publishing_keeps_the_checkpoint_and_the_gpu_unlocked()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        world.Fail = call => call == "resume" ? CheckpointWorld.Failure(ErrorIds.ResumeFailed) : null;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world, new SaveOptions { LeaveRunning = true }));

        Assert.Equal(ErrorIds.ResumeFailed, failure.ErrorId);
        Assert.True(Directory.Exists(world.Store.CheckpointPath(world.Engine.ConfigHash)));
        Assert.Equal(CudaProcessState.Running, world.Cuda.StateOf(CheckpointWorld.CorePid));
        Assert.Single(world.Calls, "resume");
    }

    [Fact]
    public async Task Ctrl_C_during_the_dump_unwinds_like_a_failure()
    {
        using var world = new CheckpointWorld();
        using var cancellation = new CancellationTokenSource();
        world.Fail = call =>
        {
            if (call == "dump")
            {
                cancellation.Cancel();
                return new OperationCanceledException(cancellation.Token);
            }

            return null;
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, new SaveOptions { LeaveRunning = true }, cancellation.Token));

        Assert.Empty(world.StagingDirectories());
        Assert.Equal(new[] { "dump", "open-fifo", "resume", "close-fifo" }, world.Calls.SkipWhile(c => c != "dump"));
    }

    [Fact]
    public async Task A_save_sweeps_staging_directories_that_a_dead_save_left_an_hour_ago()
    {
        using var world = new CheckpointWorld();
        var stale = world.Store.CreateStaging("deadbeef");
        var fresh = world.Store.CreateStaging("cafef00d");
        Directory.SetLastWriteTimeUtc(stale, DateTime.UtcNow - TimeSpan.FromHours(2));

        await Save(world);

        Assert.False(Directory.Exists(stale));
        Assert.True(Directory.Exists(fresh));
    }

    [Fact]
    public async Task A_restored_engine_is_refused_before_anything_changes()
    {
        using var world = new CheckpointWorld();
        world.Engine.Record.StartedFrom = Engine.StartSource.Checkpoint;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Save(world));

        Assert.Equal(ErrorIds.RestoredEngineNotCheckpointable, failure.ErrorId);
        Assert.DoesNotContain("prepare", world.Calls);
    }

    private static Task<SaveResult> Save(CheckpointWorld world, SaveOptions? options = null) =>
        new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, options ?? new SaveOptions(), CancellationToken.None);
}
