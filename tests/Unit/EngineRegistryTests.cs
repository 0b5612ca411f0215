using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class EngineRegistryTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("registry-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void RecordsSurviveARoundTripThroughTheRunDirectory()
    {
        var registry = new EngineRegistry(root);
        var spec = new EngineSpec { Model = "tiny-4m", Workers = 2, EngineArgs = new Dictionary<string, object?> { ["seed"] = 3 } };

        var created = registry.Create(spec, "alpha", StartSource.Cold);
        var listed = Assert.Single(registry.List());

        Assert.Equal(created.Id, listed.Id);
        Assert.Equal("alpha", listed.Name);
        Assert.Equal(2, listed.Spec.Workers);
        Assert.Equal(ConfigHash.Compute(spec), listed.ConfigHash);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            File.GetUnixFileMode(created.RunDirectory));
    }

    [Fact]
    public async Task AnEnginesStartupIsKeptInItsRecordAndDescribedFromThereInAnySession()
    {
        var registry = new EngineRegistry(root);
        var record = registry.Create(new EngineSpec(), "kept", StartSource.Cold);
        record.RecordStartup(PhaseTimings.FromSeconds(new Dictionary<string, double> { ["launch"] = 0.25, ["hello"] = 0.5 }, 1.0));
        registry.Save(record);

        var listed = Assert.Single(registry.List());
        var described = await new EngineInspector(registry, new ProcFs(Path.Combine(root, "no-proc")))
            .DescribeAsync(listed, probe: false, TimeSpan.FromSeconds(1), CancellationToken.None);

        Assert.Equal(new[] { "launch", "hello" }, described.StartupTime!.Keys);
        Assert.Equal(0.5, described.StartupTime["hello"]);
        Assert.Equal(1.0, described.StartupSeconds);
    }

    [Fact]
    public void UnnamedEnginesGetANameFromBackendAndId()
    {
        var record = new EngineRegistry(root).Create(new EngineSpec { Backend = "tiny" }, null, StartSource.Cold);

        Assert.Equal($"tiny-{record.Id[..6]}", record.Name);
    }

    [Fact]
    public void RemoveDeletesTheRunDirectoryAndDirectoriesWithoutARecordAreSkipped()
    {
        var registry = new EngineRegistry(root);
        var record = registry.Create(new EngineSpec(), "gone", StartSource.Cold);
        Directory.CreateDirectory(Path.Combine(registry.EnginesDirectory, "half-created"));

        registry.Remove(record);

        Assert.False(Directory.Exists(record.RunDirectory));
        Assert.Empty(registry.List());
    }
}
