using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class ManifestValidationTests
{
    public static TheoryData<string, string> BadFields => new()
    {
        { "config_hash", "../../etc" },
        { "config_hash", "ABCDEF0123456789" },
        { "engine_id", "0123456789" },
        { "run_directory", "relative/engines/0123456789ab" },
        { "run_directory", "/tmp/registry/engines/../engines/0123456789ab" },
        { "run_directory", "/tmp/registry//engines/0123456789ab" },
        { "run_directory", "/tmp/registry/engines/0123456789ab/" },
        { "run_directory", "/tmp/registry/replicas/0123456789ab" },
        { "run_directory", "/engines/0123456789ab" },
        { "run_directory", "/etc" },
        { "run_directory", "/tmp/registry/engines/0123456789ac" },
        { "images[0].path", "../../../etc/passwd" },
        { "images[0].path", "sub/pages-1.img" },
        { "images[0].path", ".." },
        { "images[0].path", "" },
        { "images[0].size", "-1" },
        { "images[0].hash", "00" },
        { "images[1].path", "listed twice" },
        { "images", "none" },
        { "image_bytes", "1" },
        { "log_size_at_dump", "-5" },
        { "log_hash", "" },
        { "log_mode", "4095" },
        { "process_tree[0]", "0" },
        { "process_tree[1]", "-4101" },
        { "process_tree", "none" },
        { "mapped_files", "lib/libc.so.6" },
        { "gpu.process_ids", "0" },
        { "gpu.device_names", "one name too many" },
        { "gpu.serving_bytes", "-1" },
        { "gpu_bytes", "-1" },
        { "timings.prepare", "-1" },
        { "canary.prompt", "" },
        { "canary.token_ids", "5 token ids" },
        { "canary.token_ids", "-1" },
        { "canary.logprobs", "0.5" },
        { "canary.logprobs", "one too many" },
        { "runtime.environment", "not a hash" },
        { "runtime.versions", "no version" },
        { "runtime.processes", "0" },
    };

    [Theory]
    [MemberData(nameof(BadFields))]
    public async Task A_manifest_with_a_bad_field_is_refused_as_corrupt_naming_the_field(string field, string value)
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.RewriteManifest(checkpoint, m => Spoil(m, field, value));

        var failure = Assert.Throws<CriuCheckpointException>(() => CheckpointStore.Open(checkpoint.Path));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Contains(field, failure.Message);
    }

    [Fact]
    public async Task A_bad_manifest_is_refused_before_a_restore_makes_anything_on_the_host()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        var outside = Path.Combine(world.Root, "elsewhere", "engines", "0123456789ab");
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.RunDirectory = outside + "/../../../escaped/engines/0123456789ab");

        // The piped object still holds the manifest as it was saved: the restore believes the file on disk.
        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(checkpoint, new RestoreOptions(), CancellationToken.None));

        Assert.Equal(ErrorIds.CheckpointCorrupt, failure.ErrorId);
        Assert.Contains("run_directory", failure.Message);
        Assert.Empty(world.Calls);
        Assert.False(Directory.Exists(Path.Combine(world.Root, "escaped")));
        Assert.False(Directory.Exists(world.Registry.ReplicasDirectory));
    }

    [Fact]
    public async Task A_manifest_of_another_schema_is_incompatible()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();
        CheckpointTestFiles.RewriteManifest(checkpoint, m => m.SchemaVersion = 1);

        var failure = Assert.Throws<CriuCheckpointException>(() => CheckpointStore.Open(checkpoint.Path));

        Assert.Equal(ErrorIds.CheckpointIncompatible, failure.ErrorId);
        Assert.Contains("schema_version 1", failure.Message);
    }

    [Fact]
    public async Task The_canary_and_inventory_the_engine_answered_are_recorded_as_data()
    {
        using var world = new CheckpointWorld();
        var checkpoint = await world.SaveAsync();

        var manifest = CheckpointStore.Open(checkpoint.Path).Manifest;

        Assert.Equal("The capital of France is", manifest.Canary!.Prompt);
        Assert.Equal(new[] { 65, 66 }, manifest.Canary.TokenIds);
        Assert.Equal(new[] { -0.5, -1.25 }, manifest.Canary.Logprobs);
        Assert.Equal(EnvironmentIdentity.OfProcess().Sha256, manifest.Runtime!.Environment.Sha256);
        Assert.Equal("3.11.2", manifest.Runtime.Versions["python"]);
        var json = File.ReadAllText(CheckpointStore.ManifestPath(checkpoint.Path));
        Assert.Contains("\"canary\": {", json);
        Assert.Contains("\"token_ids\": [", json);
    }

    [Fact]
    public async Task A_save_with_skip_canary_records_none_and_a_restore_then_checks_none()
    {
        using var world = new CheckpointWorld();
        var saved = await new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, new SaveOptions { SkipCanary = true }, CancellationToken.None);

        Assert.Contains("prepare without canary", world.Calls);
        Assert.Null(CheckpointStore.Open(saved.Checkpoint.Path).Manifest.Canary);
        var outcomes = await new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(saved.Checkpoint, new RestoreOptions(), CancellationToken.None);
        Assert.NotNull(outcomes[0].Engine);
        Assert.True(world.Engines.ResumeTermsGiven.Last().SkipCanary);
    }

    [Fact]
    public async Task The_manifest_a_save_writes_is_valid()
    {
        using var world = new CheckpointWorld(usesCuda: true);
        var checkpoint = await world.SaveAsync();

        Assert.Equal(checkpoint.ConfigHash, CheckpointStore.Open(checkpoint.Path).ConfigHash);
    }

    private static void Spoil(CheckpointManifest manifest, string field, string value)
    {
        var gpu = new GpuManifest { ProcessIds = new() { 4101 }, DeviceUuids = new() { "GPU-aaaa" }, DeviceNames = new() { "H200" }, ServingBytes = new() { 1 } };
        manifest.Gpu = field.StartsWith("gpu.", StringComparison.Ordinal) ? gpu : manifest.Gpu;
        switch (field)
        {
            case "config_hash": manifest.ConfigHash = value; break;
            case "engine_id": manifest.EngineId = value; break;
            case "run_directory":
                manifest.EngineId = "0123456789ab";
                manifest.RunDirectory = value;
                break;
            case "images[0].path": manifest.Images[0].Path = value; break;
            case "images[0].size": manifest.Images[0].Size = long.Parse(value); break;
            case "images[0].hash": manifest.Images[0].Hash = value; break;
            case "images[1].path": manifest.Images[1].Path = manifest.Images[0].Path; break;
            case "images": manifest.Images.Clear(); break;
            case "image_bytes": manifest.ImageBytes += long.Parse(value); break;
            case "log_size_at_dump": manifest.LogSizeAtDump = long.Parse(value); break;
            case "log_hash": manifest.LogHash = value; break;
            case "log_mode": manifest.LogMode = int.Parse(value); break;
            case "process_tree[0]": manifest.ProcessTree[0] = manifest.ProcessTree[0] with { ProcessId = int.Parse(value) }; break;
            case "process_tree[1]": manifest.ProcessTree[1] = manifest.ProcessTree[1] with { NamespaceProcessId = int.Parse(value) }; break;
            case "process_tree": manifest.ProcessTree.Clear(); break;
            case "mapped_files": manifest.MappedFiles.Add(new MappedFile { Path = value, Size = 1 }); break;
            case "gpu.process_ids": gpu.ProcessIds[0] = int.Parse(value); break;
            case "gpu.device_names": gpu.DeviceNames.Add("H200"); break;
            case "gpu.serving_bytes": gpu.ServingBytes[0] = long.Parse(value); break;
            case "gpu_bytes": manifest.GpuBytes = long.Parse(value); break;
            case "timings.prepare": manifest.Timings["prepare"] = double.Parse(value); break;
            case "canary.prompt": manifest.Canary!.Prompt = value; break;
            case "canary.token_ids" when value == "-1": manifest.Canary!.TokenIds[0] = -1; break;
            case "canary.token_ids":
                manifest.Canary!.TokenIds = [1, 2, 3, 4, 5];
                manifest.Canary.Logprobs = [-1, -1, -1, -1, -1];
                break;
            case "canary.logprobs" when value == "one too many": manifest.Canary!.Logprobs.Add(-1); break;
            case "canary.logprobs": manifest.Canary!.Logprobs[0] = double.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            case "runtime.environment": manifest.Runtime!.Environment.Sha256 = value; break;
            case "runtime.versions": manifest.Runtime!.Versions["torch"] = null!; break;
            case "runtime.processes": manifest.Runtime!.Processes.Add(new RuntimeProcess { ProcessId = int.Parse(value) }); break;
            default: throw new ArgumentException(field);
        }
    }
}
