using System.Text.Json;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>PrefetchWeights: when a restore starts the weight prefetch, how its timings show it, and that it never outlives the restore.</summary>
public sealed class RestorePrefetchTests
{
    private const string ModelDirectory = "/models/llama-8b";

    [Fact]
    public void The_prefetch_starts_after_validate_and_before_the_images_are_verified()
    {
        Assert.Equal(new[] { "Validate", "PrefetchWeights", "VerifyImages" }, CheckpointRestorer.OnceSteps.Select(s => s.Name));
    }

    [Fact]
    public async Task Weights_from_a_model_directory_are_prefetched_once_for_all_replicas_before_criu_starts()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);

        var outcomes = await world.RestoreAsync(checkpoint, new RestoreOptions { Count = 2, Name = "r" });

        Assert.All(outcomes, o => Assert.Null(o.Failure));
        Assert.Equal(new[] { ModelDirectory }, world.WeightPrefetcher.Directories);
        Assert.True(world.Calls.IndexOf("prefetch-start") < world.Calls.IndexOf("start-restore"), string.Join(", ", world.Calls));
        Assert.Contains(world.Observer.VerboseMessages, m => m.StartsWith($"Weight prefetch: reading the *.safetensors files of {ModelDirectory}", StringComparison.Ordinal));
        Assert.Contains("Weight prefetch finished: 2 file(s) of 0.00 GB, 0.00 GB read in 0.500 s (0.01 GB/s), 0.00 GB in the page cache already.", world.Observer.VerboseMessages);
    }

    [Fact]
    public async Task Each_replica_shows_the_prefetch_beside_its_phases_and_keeps_it_in_its_record()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);

        var engine = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Engine!;

        var timings = engine.StartupTime!;
        Assert.Equal(new[] { "validate", "verify", "run-directory", "criu-restore", "resume", "canary", "hello" }, timings.Keys);
        var prefetch = Assert.Single(timings.Background);
        Assert.Equal(new BackgroundWork("weight-prefetch", 0.5, FakeWeightPrefetcher.ModelBytes), prefetch);
        Assert.EndsWith("; beside them: weight-prefetch 0.500 s, 0.00 GB at 0.01 GB/s)", timings.ToString(), StringComparison.Ordinal);
        var kept = Assert.Single(world.Registry.List()).Startup()!;
        Assert.Equal(timings.Keys, kept.Keys);
        Assert.Equal(timings.TotalSeconds, kept.TotalSeconds);
        Assert.Equal(prefetch, Assert.Single(kept.Background));
    }

    [Fact]
    public async Task Weights_in_the_image_are_not_prefetched()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: false);

        var engine = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Engine!;

        Assert.Empty(world.WeightPrefetcher.Directories);
        Assert.Empty(engine.StartupTime!.Background);
    }

    [Fact]
    public async Task A_model_given_by_name_is_not_prefetched()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.Spec = m.Spec with { Model = "meta-llama/Llama-3.1-8B" });

        Assert.Null((await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Failure);

        Assert.Empty(world.WeightPrefetcher.Directories);
    }

    [Fact]
    public async Task Skip_weight_prefetch_leaves_the_weights_to_the_engines_and_says_so()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);

        var engine = (await world.RestoreAsync(checkpoint, new RestoreOptions { SkipWeightPrefetch = true }))[0].Engine!;

        Assert.Empty(world.WeightPrefetcher.Directories);
        Assert.Empty(engine.StartupTime!.Background);
        Assert.Contains(world.Observer.VerboseMessages, m => m.StartsWith("Weight prefetch: skipped (-SkipWeightPrefetch)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_prefetch_still_reading_when_the_replicas_serve_is_stopped_and_waited_for_before_the_restore_returns()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);
        world.WeightPrefetcher.ReadsUntilStopped = true;

        var engine = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0].Engine!;

        Assert.True(world.WeightPrefetcher.Finished);
        Assert.Equal("prefetch-end", world.Calls.Last());
        Assert.Equal(1L << 20, Assert.Single(engine.StartupTime!.Background).Bytes);
        Assert.Contains("Weight prefetch stopped with the restore: of 0.00 GB, 0.00 GB read in 0.500 s (0.00 GB/s), 0.00 GB in the page cache already.", world.Observer.VerboseMessages);
    }

    [Fact]
    public async Task A_damaged_image_stops_the_prefetch_before_the_restore_fails()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);
        world.WeightPrefetcher.ReadsUntilStopped = true;
        File.AppendAllText(Path.Combine(CheckpointStore.ImagesPath(checkpoint.Path), "pages-1.img"), "x");

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions()));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.True(world.WeightPrefetcher.Finished);
        Assert.DoesNotContain("start-restore", world.Calls);
    }

    [Fact]
    public async Task Replicas_that_all_fail_stop_the_prefetch_before_the_restore_returns()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);
        world.WeightPrefetcher.ReadsUntilStopped = true;
        world.Fail = call => call == "start-restore" ? CheckpointWorld.Failure(ErrorIds.CriuRestoreFailed) : null;

        var outcomes = await world.RestoreAsync(checkpoint, new RestoreOptions { Count = 2, Name = "r" });

        Assert.All(outcomes, o => Assert.Equal(ErrorIds.CriuRestoreFailed, o.Failure!.ErrorId));
        Assert.True(world.WeightPrefetcher.Finished);
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task Ctrl_c_during_criu_stops_the_prefetch_before_the_restore_ends()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);
        world.WeightPrefetcher.ReadsUntilStopped = true;
        world.Engines.FifoNeverOpens = true;
        using var ctrlC = new CancellationTokenSource();
        world.Criu.OnStart = _ => ctrlC.CancelAfter(50);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(checkpoint, new RestoreOptions { Name = "r" }, ctrlC.Token));

        Assert.True(world.WeightPrefetcher.Finished);
        Assert.Empty(world.Registry.List());
    }

    [Fact]
    public async Task A_prefetch_that_cannot_open_the_model_directory_is_a_warning_and_the_restore_goes_on()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await SavedCheckpoint(world, weightsFromSource: true);
        world.Fail = call => call == "prefetch-start" ? new NativeException(NativeFailure.Failed, "openat", $"{ModelDirectory}: No such file or directory") { ErrorNumber = 2 } : null;

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0];

        Assert.Null(outcome.Failure);
        Assert.Empty(outcome.Engine!.StartupTime!.Background);
        Assert.Equal(
            $"The weights in {ModelDirectory} were not prefetched ({ModelDirectory}: No such file or directory); each engine reads them from the disk itself.",
            Assert.Single(world.Observer.Warnings));
    }

    [Theory]
    [InlineData("true", ModelDirectory)]
    [InlineData("false", null)]
    [InlineData("\"true\"", null)]
    public void The_source_directory_is_the_model_only_when_the_manifest_says_weights_from_source(string flag, string? expected)
    {
        var manifest = JsonSerializer.Deserialize<CheckpointManifest>(
            $"{{\"spec\": {{\"model\": \"{ModelDirectory}\", \"engine_args\": {{\"weights_from_source\": {flag}}}}}}}", RunDirectory.Json)!;

        Assert.Equal(expected, PrefetchWeightsStep.SourceDirectory(manifest));
    }

    private static async Task<EngineCheckpoint> SavedCheckpoint(CheckpointWorld world, bool weightsFromSource)
    {
        var checkpoint = await world.SaveAsync();
        if (weightsFromSource)
        {
            CheckpointTestFiles.RewriteManifest(checkpoint, m => m.Spec = m.Spec with
            {
                Backend = "torch",
                Model = ModelDirectory,
                EngineArgs = new SortedDictionary<string, object?>(StringComparer.Ordinal) { [PrefetchWeightsStep.WeightsFromSource] = true },
            });
        }

        world.Observer.VerboseMessages.Clear();
        return checkpoint;
    }
}
