using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Gpu;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>Every checkpoint a cmdlet writes says whether this host can restore it (Compatible).</summary>
public sealed class HostComparisonTests
{
    [Fact]
    public async Task The_checkpoint_a_save_writes_is_compared_with_this_host()
    {
        using var world = new CheckpointWorld();

        var checkpoint = (await Save(world)).Checkpoint;

        Assert.True(checkpoint.Compatible);
        Assert.Empty(checkpoint.CompatibilityIssues!);
    }

    [Fact]
    public async Task The_checkpoint_a_save_finds_already_there_is_compared_too()
    {
        using var world = new CheckpointWorld();
        await Save(world, new SaveOptions { LeaveRunning = true });

        var found = (await Save(world, new SaveOptions { LeaveRunning = true })).Checkpoint;

        Assert.True(found.Compatible);
    }

    [Fact]
    public async Task An_imported_checkpoint_of_another_kernel_comes_out_incompatible_naming_the_kernel()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await Save(world)).Checkpoint;
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.Host.Kernel = "5.10.0");
        var archive = (await new CheckpointExporter(world.Services, world.Observer)
            .ExportAsync(checkpoint.Path, Path.Combine(world.Root, "checkpoint.tar"), CancellationToken.None)).FullName;

        var imported = await new CheckpointImporter(world.Services, world.Observer)
            .ImportAsync(archive, new CheckpointStore(Path.Combine(world.Root, "other-store")), force: true, CancellationToken.None);

        Assert.False(imported.Compatible);
        Assert.Equal("Kernel", Assert.Single(imported.CompatibilityIssues!).Property);
    }

    [Fact]
    public async Task A_checkpoint_without_gpu_state_is_compared_without_asking_for_gpus()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await Save(world)).Checkpoint;
        var gpus = new CountingGpuInventory(withDriver: true);

        var compared = new HostComparison(world.Host.Facts("4.2.1", string.Empty), gpus).Compare(checkpoint);

        Assert.True(compared.Compatible);
        Assert.Equal(0, gpus.Collected);
    }

    [Fact]
    public async Task A_gpu_checkpoint_on_a_host_without_a_driver_is_incompatible_and_gpus_are_read_once()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        var checkpoint = (await Save(world)).Checkpoint;
        var gpus = new CountingGpuInventory(withDriver: false);
        var host = new HostComparison(world.Host.Facts(checkpoint.Manifest.Host.CriuVersion, string.Empty), gpus);

        var compared = host.Compare(checkpoint);
        host.Compare(checkpoint);

        Assert.False(compared.Compatible);
        Assert.Contains(compared.CompatibilityIssues!, i => i.Property == "GpuDriver" && i.Host == "none");
        Assert.Equal(1, gpus.Collected);
    }

    private static Task<SaveResult> Save(CheckpointWorld world, SaveOptions? options = null) =>
        new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, options ?? new SaveOptions(), CancellationToken.None);

    private sealed class CountingGpuInventory : IGpuInventory
    {
        private readonly bool withDriver;

        public CountingGpuInventory(bool withDriver) => this.withDriver = withDriver;

        public int Collected { get; private set; }

        public bool AnyUsesCuda(IEnumerable<int> processIds) => false;

        public GpuSnapshot Collect(IReadOnlyCollection<int>? among = null)
        {
            Collected++;
            return withDriver
                ? new GpuSnapshot(new[] { FakeGpuInventory.Device }, Array.Empty<GpuProcess>())
                : throw new CriuCheckpointException(ErrorIds.GpuDriverNotFound, FailureKind.ObjectNotFound, "no driver");
        }
    }
}
