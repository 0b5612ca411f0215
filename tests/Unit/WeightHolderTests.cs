using System.Text.Json;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class WeightHolderTests : IDisposable
{
    private const int HolderPid = 7300;
    private readonly string model = Directory.CreateTempSubdirectory("criu-model-").FullName;

    public WeightHolderTests()
    {
        File.WriteAllBytes(Path.Combine(model, "model-00001-of-00002.safetensors"), new byte[64]);
        File.WriteAllBytes(Path.Combine(model, "model-00002-of-00002.safetensors"), new byte[32]);
        File.WriteAllText(Path.Combine(model, "config.json"), "{}");
    }

    public void Dispose() => Directory.Delete(model, recursive: true);

    [Fact]
    public void A_ready_holder_of_the_same_model_on_the_engines_gpu_with_unchanged_files_matches()
    {
        var holder = Ready(Holder("a"));

        var (found, reason) = WeightHolderMatch.Find(new[] { holder }, model + "/", new[] { "gpu-aaaa" }, WeightHolderMatch.FilesOf(model));

        Assert.Same(holder, found);
        Assert.Equal($"holder a holds {model}/ on GPU 0", reason);
    }

    [Fact]
    public void Each_holder_that_does_not_fit_is_named_with_why()
    {
        var loading = Holder("loading");
        var other = Ready(Holder("other")) with { Ready = ReadyFile() with { Model = "/models/other" } };
        var elsewhere = Ready(Holder("elsewhere")) with { Ready = ReadyFile() with { GpuUuid = "GPU-bbbb" } };
        var stale = Ready(Holder("stale"));
        File.AppendAllText(Path.Combine(model, "model-00002-of-00002.safetensors"), "changed");

        var (found, reason) = WeightHolderMatch.Find(new[] { loading, other, elsewhere, stale }, model, new[] { "GPU-aaaa" }, WeightHolderMatch.FilesOf(model));

        Assert.Null(found);
        Assert.Equal("loading: it is loading; other: it holds /models/other; elsewhere: it is on GPU GPU-bbbb, the engine lands on GPU-aaaa; "
            + "stale: the model's files changed since it read them", reason);
        Assert.Equal("no weight holder runs on this host", WeightHolderMatch.Find(Array.Empty<WeightHolder>(), model, new[] { "GPU-aaaa" }, Array.Empty<HeldFile>()).Reason);
    }

    [Fact]
    public void Only_safetensors_files_that_are_not_links_make_a_models_identity()
    {
        File.CreateSymbolicLink(Path.Combine(model, "linked.safetensors"), Path.Combine(model, "config.json"));

        var files = WeightHolderMatch.FilesOf(model);

        Assert.Equal(new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" }, files.Select(f => f.Name).Order());
        Assert.Equal(new long[] { 64, 32 }, files.OrderBy(f => f.Name).Select(f => f.Size));
        Assert.Empty(WeightHolderMatch.FilesOf(Path.Combine(model, "missing")));
    }

    [Fact]
    public void The_registry_tells_a_loading_a_ready_and_an_exited_holder_apart()
    {
        using var world = new CheckpointWorld();
        var registry = new WeightHolderRegistry(world.Registry.Root, world.Services.ProcFs);
        var exited = registry.Create(model, 0, "/usr/bin/python3", "exited");
        exited.RootProcessId = 7999;
        registry.Save(exited);
        var loading = Started(world, registry, "loading", HolderPid + 1, ready: false);
        var ready = Started(world, registry, "ready", HolderPid, ready: true);

        var holders = registry.List().ToDictionary(h => h.Name);

        Assert.Equal(WeightHolderState.Exited, holders["exited"].State);
        Assert.Equal(WeightHolderState.Loading, holders["loading"].State);
        Assert.Equal(WeightHolderState.Ready, holders["ready"].State);
        Assert.Equal(96, holders["ready"].WeightBytes);
        Assert.Equal(2, holders["ready"].Tensors);
        Assert.Equal(Path.Combine(ready.RunDirectory, "holder.sock"), holders["ready"].Socket);
        Assert.Null(holders["loading"].Socket);
        registry.Remove(loading);
        Assert.False(Directory.Exists(loading.RunDirectory));
    }

    [Fact]
    public async Task A_restore_of_a_weights_from_source_checkpoint_names_the_matching_holder_and_needs_its_bytes_less_free()
    {
        using var world = new CheckpointWorld(usesCuda: true, WeightsFromSourceSpec());
        var checkpoint = await world.SaveAsync();
        Started(world, new WeightHolderRegistry(world.Registry.Root, world.Services.ProcFs), "llama", HolderPid, ready: true, bytes: 512L << 20);
        // 1 GiB held while serving, 512 MiB of it the holder's: 600 MiB free is enough with the holder, not without.
        world.Gpus.UsedByOthers = (140L << 30) - (600L << 20);

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0];

        Assert.Null(outcome.Failure);
        Assert.EndsWith("/holder.sock", world.Engines.ResumeTermsGiven.Last().WeightHolder);
        Assert.Contains(world.Observer.VerboseMessages, line => line.StartsWith("Replicas map their weights from holder llama holds", StringComparison.Ordinal));

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => world.RestoreAsync(checkpoint, new RestoreOptions { UseWeightHolder = false }));
        Assert.Equal(ErrorIds.InsufficientGpuMemory, failure.ErrorId);
    }

    [Fact]
    public async Task A_restore_without_a_matching_holder_reads_the_files_and_says_why()
    {
        using var world = new CheckpointWorld(usesCuda: true, WeightsFromSourceSpec());
        var checkpoint = await world.SaveAsync();

        var outcome = (await world.RestoreAsync(checkpoint, new RestoreOptions()))[0];

        Assert.Null(outcome.Failure);
        Assert.Null(world.Engines.ResumeTermsGiven.Last().WeightHolder);
        Assert.Contains($"No weight holder for {model}: no weight holder runs on this host; replicas read the model's files.", world.Observer.VerboseMessages);
    }

    [Fact]
    public void The_resume_message_names_the_holder_only_when_there_is_one()
    {
        using var with = JsonDocument.Parse(EngineResumer.ResumeMessage(40123, "key", new ResumeTerms(null, true, "/run/criu-checkpoint/holders/ab/holder.sock")));
        using var without = JsonDocument.Parse(EngineResumer.ResumeMessage(40123, "key", new ResumeTerms(null, true)));

        Assert.Equal("/run/criu-checkpoint/holders/ab/holder.sock", with.RootElement.GetProperty("weight_holder").GetString());
        Assert.False(without.RootElement.TryGetProperty("weight_holder", out _));
    }

    [Fact]
    public void The_holders_command_line_is_its_record_and_its_gpu_numbered_as_nvidia_smi_numbers_it()
    {
        var record = new WeightHolderRecord { Python = "/usr/bin/python3", Model = "/models/llama", GpuIndex = 1, RunDirectory = "/run/h/ab" };

        Assert.Equal(new[] { "/usr/bin/python3", "-m", "engine_host.weight_holder", "--model", "/models/llama", "--device", "1", "--run-dir", "/run/h/ab" },
            WeightHolderLauncher.CommandLine(record));
        Assert.Equal("PCI_BUS_ID", WeightHolderLauncher.Environment()["CUDA_DEVICE_ORDER"]);
    }

    private EngineSpec WeightsFromSourceSpec() => new()
    {
        Python = "/usr/bin/python3",
        Backend = "torch",
        Model = model,
        EngineArgs = new SortedDictionary<string, object?>(StringComparer.Ordinal) { ["weights_from_source"] = true },
    };

    private WeightHolderRecord Started(CheckpointWorld world, WeightHolderRegistry registry, string name, int pid, bool ready, long bytes = 96)
    {
        var record = registry.Create(model, 0, "/usr/bin/python3", name);
        record.RootProcessId = pid;
        record.RootStartTime = 100;
        registry.Save(record);
        var proc = Path.Combine(world.Root, "proc", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(proc);
        File.WriteAllText(Path.Combine(proc, "stat"), $"{pid} (python3) S 1 {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 100 1000 10 0");
        if (ready)
        {
            var run = new HolderRunDirectory(record.RunDirectory);
            RunDirectory.WriteJsonAtomic(run.ReadyFile, ReadyFile() with { Pid = pid, Socket = run.Socket, Bytes = bytes });
        }

        return record;
    }

    private HolderReady ReadyFile() => new()
    {
        Model = model,
        GpuUuid = "GPU-aaaa",
        Bytes = 96,
        Layout = JsonSerializer.Deserialize<List<JsonElement>>("[{}, {}]")!,
        Files = WeightHolderMatch.FilesOf(model).ToList(),
    };

    private WeightHolder Holder(string name) => new() { Id = name, Name = name, Model = model, State = WeightHolderState.Loading };

    private WeightHolder Ready(WeightHolder holder) => holder with { State = WeightHolderState.Ready, Ready = ReadyFile() };
}
