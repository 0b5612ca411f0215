using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class RestoreStepsTests
{
    [Fact]
    public void A_replica_is_the_documented_steps_in_order()
    {
        Assert.Equal(new[] { "MakeRunDirectory", "RestoreProcesses", "RestoreCuda", "Resume", "Verify" },
            CheckpointRestorer.ReplicaSteps.Select(s => s.Name));
    }

    [Fact]
    public async Task Two_replicas_restore_each_in_its_own_run_directory_and_namespaces()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();

        var outcomes = await world.RestoreAsync(checkpoint, new RestoreOptions { Count = 2, Name = "replica" });

        Assert.All(outcomes, o => Assert.Null(o.Failure));
        Assert.Equal(new[] { "replica-1", "replica-2" }, outcomes.Select(o => o.Engine!.Name).Order());
        Assert.Equal(2, world.Registry.List().Count);
        foreach (var command in world.Criu.CommandLines.Skip(1))
        {
            Assert.Equal(new[] { "unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--net", "--propagation", "private" }, command.Take(8));
            Assert.Equal(new[] { "/opt/criu/bin/criu", "restore" }, command.SkipWhile(a => a != "/opt/criu/bin/criu").Take(2));
        }

        var timings = outcomes[0].Engine!.StartupTime!;
        Assert.Equal(new[] { "validate", "verify", "run-directory", "criu-restore", "resume", "canary", "hello" }, timings.Phases.Select(p => p.Key));
    }

    [Fact]
    public async Task Direct_image_reads_reach_a_criu_that_has_them()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Criu.Version = new Version(4, 3);

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions { DirectImageReads = true }))[0];

        Assert.Null(outcome.Failure);
        Assert.Equal(new[] { "--image-io-mode", "direct" }, world.Criu.CommandLines.Last().TakeLast(2));
        Assert.Empty(world.Observer.Warnings);
    }

    [Fact]
    public async Task Direct_image_reads_asked_of_an_older_criu_restore_through_the_page_cache_with_a_warning()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions { DirectImageReads = true }))[0];

        Assert.Null(outcome.Failure);
        Assert.DoesNotContain("--image-io-mode", world.Criu.CommandLines.Last());
        Assert.Equal("criu 4.2.1 at /opt/criu/bin/criu cannot read images directly (criu 4.3 added it); it reads them through the page cache.",
            Assert.Single(world.Observer.Warnings));
    }

    [Fact]
    public async Task A_replica_keeps_its_restore_timings_in_its_record_for_every_session_to_read()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();

        var engine = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Engine!;

        var record = Assert.Single(world.Registry.List());
        Assert.Equal(engine.StartupTime!.Keys, record.Startup()!.Keys);
        Assert.Equal(engine.StartupSeconds, record.StartupSeconds);
    }

    [Fact]
    public async Task A_checkpoint_with_gpu_state_is_restored_onto_the_cuda_process_host_pid()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        var checkpoint = await world.SaveAsync();
        var replicaRoot = 0;
        world.Criu.OnStart = pid => replicaRoot = pid;

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0];

        Assert.Null(outcome.Failure);
        // In the fake tree the CUDA process is the child of the replica's root, with the recorded namespace PID.
        var restore = world.Cuda.CallsOf("restore").Last();
        Assert.Equal(replicaRoot + 1, restore.ProcessId);
        Assert.Equal(CudaProcessState.Running, world.Cuda.StateOf(replicaRoot + 1));
    }

    [Fact]
    public async Task A_gpu_without_room_for_what_the_engine_held_while_serving_is_refused_before_anything_starts()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        var checkpoint = await world.SaveAsync();
        Assert.Equal(new[] { 1L << 30 }, checkpoint.Manifest.Gpu!.ServingBytes);
        world.Gpus.UsedByOthers = (140L << 30) - (3L << 29);

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions { Count = 2 }));

        Assert.Equal(ErrorIds.InsufficientGpuMemory, failure.ErrorId);
        Assert.Equal("GPU 0 (GPU-aaaa) has 1536 MiB free; 2 replica(s) of " + checkpoint.Path + " need 2048 MiB there (what the engine held while it served). Get-GpuProcess shows what holds that GPU.",
            failure.Message);
        Assert.DoesNotContain("start-restore", world.Calls);
        Assert.Empty(world.Registry.List());
        Assert.Null((await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Failure);
    }

    [Fact]
    public async Task Validate_refuses_several_replicas_in_the_host_pid_namespace_before_anything_starts()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Calls.Clear();

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions { Count = 2, HostPidNamespace = true }));

        Assert.Equal(ErrorIds.ConflictingParameters, failure.ErrorId);
        Assert.Empty(world.Calls);
    }

    [Fact]
    public async Task Validate_refuses_a_damaged_image_before_anything_starts()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        File.AppendAllText(Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img"), "x");
        world.Calls.Clear();

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions()));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.DoesNotContain("start-restore", world.Calls);
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task Validate_names_the_property_that_does_not_fit_this_host()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.Host.Kernel = "5.10.0");

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions()));

        Assert.Equal(ErrorIds.CheckpointIncompatible, failure.ErrorId);
        Assert.Contains("Kernel: checkpoint has '5.10.0', this host has '6.18.0'", failure.Message);
    }

    [Fact]
    public async Task Validate_refuses_a_run_directory_outside_this_hosts_registry_and_creates_nothing()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var elsewhere = Path.Combine(world.Root, "elsewhere");
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.RunDirectory = Path.Combine(elsewhere, "engines", m.EngineId));
        var engines = world.Registry.List().Count;

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions()));

        Assert.Equal(ErrorIds.CheckpointInsecure, failure.ErrorId);
        Assert.Contains("not in this host's engine registry", failure.Message);
        Assert.False(Directory.Exists(elsewhere));
        Assert.Equal(engines, world.Registry.List().Count);
    }

    [Fact]
    public async Task Criu_that_cannot_start_fails_the_replica_and_removes_its_run_directory()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Fail = call => call == "start-restore" ? CheckpointWorld.Failure(ErrorIds.CriuRestoreFailed) : null;

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }))[0];

        Assert.Equal(ErrorIds.CriuRestoreFailed, outcome.Failure!.ErrorId);
        Assert.Equal("abandon r", world.Calls.Last());
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task An_engine_that_exits_before_its_fifo_is_a_criu_failure_quoting_the_criu_log_and_the_command_that_ran()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Fail = call => call == "open-fifo" ? new CriuCheckpointException(ErrorIds.ResumeFailed, FailureKind.InvalidOperation, "exited before it read its resume FIFO") : null;

        var failure = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }))[0].Failure!;

        Assert.Equal(ErrorIds.CriuRestoreFailed, failure.ErrorId);
        Assert.StartsWith("criu restore of replica 1 of 1", failure.Message);
        Assert.Contains(": unshare --pid --fork", failure.Message);
        Assert.Contains("injected restore failure", failure.Details);
        Assert.Equal("abandon r", world.Calls.Last());
    }

    [Fact]
    public async Task A_failed_cuda_restore_closes_the_fifo_then_removes_the_replica()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        var checkpoint = await world.SaveAsync();
        world.Cuda.Fail = (call, _) => call == "restore" ? new CudaCallException("cuCheckpointProcessRestore", 0, 2, "CUDA_ERROR_OUT_OF_MEMORY") : null;

        var failure = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }))[0].Failure!;

        Assert.Equal(ErrorIds.CudaRestoreFailed, failure.ErrorId);
        Assert.Equal(new[] { "open-fifo", "close-fifo", "abandon r" }, world.Calls.SkipWhile(c => c != "start-restore").Skip(1));
    }

    [Fact]
    public async Task A_failed_resume_is_the_engines_failure_and_removes_the_replica()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Fail = call => call == "resume" ? CheckpointWorld.Failure(ErrorIds.ResumeFailed) : null;

        var failure = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }))[0].Failure!;

        Assert.Equal(ErrorIds.ResumeFailed, failure.ErrorId);
        Assert.Equal(new[] { "open-fifo", "resume", "close-fifo", "abandon r" }, world.Calls.SkipWhile(c => c != "start-restore").Skip(1));
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task A_replica_resumes_with_the_manifests_canary_and_its_canary_phase_is_timed()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();

        var engine = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }))[0].Engine!;

        var check = world.Engines.ResumeTermsGiven.Last();
        Assert.False(check.SkipCanary);
        Assert.Equal(checkpoint.Manifest.Canary!.TokenIds, check.Canary!.TokenIds);
        Assert.Equal(checkpoint.Manifest.Canary.Logprobs, check.Canary.Logprobs);
        Assert.Equal(0.002, engine.StartupTime!["canary"], 6);
    }

    [Fact]
    public async Task A_replica_whose_canary_differs_is_a_canary_mismatch_and_is_rolled_back()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Engines.ReplicaCanaryDiffers = true;

        var outcomes = await world.RestoreAsync(checkpoint, new RestoreOptions { Count = 2, Name = "r" });

        Assert.All(outcomes, o => Assert.Equal(ErrorIds.CanaryMismatch, o.Failure!.ErrorId));
        Assert.Contains("expected [65, 66], got [65, 67]", outcomes[0].Failure!.Message);
        Assert.Equal(FailureKind.InvalidData, outcomes[0].Failure!.Kind);
        Assert.Equal(2, world.Calls.Count(c => c.StartsWith("abandon r-", StringComparison.Ordinal)));
        Assert.DoesNotContain("hello", world.Calls.SkipWhile(c => c != "start-restore"));
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task Skip_canary_lets_a_replica_whose_canary_differs_serve()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Engines.ReplicaCanaryDiffers = true;

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r", SkipCanary = true }))[0];

        Assert.NotNull(outcome.Engine);
        Assert.True(world.Engines.ResumeTermsGiven.Last().SkipCanary);
        Assert.Equal(0, outcome.Engine!.StartupTime!["canary"]);
    }

    [Fact]
    public async Task A_replica_that_does_not_answer_hello_is_removed()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Engines.ReplicaState = EngineState.Failed;

        var failure = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }))[0].Failure!;

        Assert.Equal(ErrorIds.ResumeFailed, failure.ErrorId);
        Assert.Equal("abandon r", world.Calls.Last());
    }

    [Fact]
    public async Task A_hanging_criu_is_stopped_at_the_deadline_and_rolled_back()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        world.Engines.FifoNeverOpens = true;

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var failure = (await world.RestoreAsync(checkpoint, new RestoreOptions { Name = "r", Timeout = TimeSpan.FromMilliseconds(300) }))[0].Failure!;

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        Assert.Equal(ErrorIds.RestoreTimeout, failure.ErrorId);
        Assert.Equal(FailureKind.OperationTimeout, failure.Kind);
        Assert.Contains("step RestoreProcesses", failure.Message);
        Assert.Equal("abandon r", world.Calls.Last());
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task One_failing_replica_leaves_the_others_serving()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var starts = 0;
        world.Fail = call => call == "start-restore" && Interlocked.Increment(ref starts) == 2 ? CheckpointWorld.Failure(ErrorIds.CriuRestoreFailed) : null;

        var outcomes = await world.RestoreAsync(checkpoint, new RestoreOptions { Count = 3, Name = "r" });

        Assert.Equal(2, outcomes.Count(o => o.Engine is not null));
        Assert.Single(outcomes, o => o.Failure is not null);
        Assert.Equal(2, world.Registry.List().Count);
    }
}
