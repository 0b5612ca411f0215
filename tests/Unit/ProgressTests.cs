using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// What the progress bars say: criu's bytes while it dumps and restores (with rate and time left), one bar per replica
/// nested under the restore's, the engine's start-up phases in words; and the command lines -Debug writes.
/// </summary>
public sealed class ProgressTests
{
    [Fact]
    public async Task A_dump_reports_the_images_written_against_the_estimate_with_the_time_left()
    {
        using var world = new CheckpointWorld();
        world.Criu.DumpTakes = TransferMeter.Interval * 8;

        await new CheckpointSaver(world.Services, world.Observer).SaveAsync(world.Engine, world.Store, new SaveOptions(), CancellationToken.None);

        var activity = $"Saving engine {world.Engine.Name} to {world.Store.Path}";
        var dump = world.Observer.Reports.Where(r => r.Status.StartsWith("criu dump:", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(dump);
        Assert.All(dump, r => Assert.Equal(activity, r.Activity));
        // CheckSpace's estimate: two processes of 100 MiB, 5%, and 16 MiB.
        Assert.All(dump, r => Assert.Matches(@"^criu dump: \d+ KiB of 226 MiB written", r.Status));
        Assert.All(dump, r => Assert.InRange(r.PercentComplete, 30, 70));
        Assert.Contains(dump, r => r.Remaining is { } remaining && remaining > TimeSpan.Zero);
    }

    [Fact]
    public async Task Each_replica_has_its_own_bar_under_the_restores_showing_the_bytes_criu_has_read()
    {
        using var world = new CheckpointWorld();
        var checkpoint = (await new CheckpointSaver(world.Services).SaveAsync(world.Engine, world.Store, new SaveOptions(), CancellationToken.None)).Checkpoint;
        world.Engines.RestoreTakes = TransferMeter.Interval * 6;
        // Each replica's criu session: its root and core read 1 KiB each at first, 2 KiB each soon after (one, then the other).
        world.Criu.OnStart = pid => WriteIo(world, pid, 1024, after: 2048);

        var outcomes = await new CheckpointRestorer(world.Services, world.Observer).RestoreAsync(checkpoint, new RestoreOptions { Count = 2 }, CancellationToken.None);

        Assert.All(outcomes, o => Assert.Null(o.Failure));
        var parent = $"Restoring from {checkpoint.Path}";
        var reads = world.Observer.Reports.Where(r => r.Status.StartsWith("criu restore:", StringComparison.Ordinal)).ToList();
        Assert.Equal(
            [$"Restoring replica 1 of 2 from {checkpoint.Path}", $"Restoring replica 2 of 2 from {checkpoint.Path}"],
            reads.Select(r => r.Activity).Distinct().Order());
        Assert.All(reads, r => Assert.Equal(parent, r.ParentActivity));
        Assert.All(reads, r => Assert.Matches(@"^criu restore: [234] KiB of 5 KiB read", r.Status));
        Assert.All(reads, r => Assert.InRange(r.PercentComplete, 20, 60));
        Assert.Contains(reads, r => r.Status.StartsWith("criu restore: 4 KiB", StringComparison.Ordinal));
        Assert.DoesNotContain(world.Observer.Reports, r => r.Activity == parent && r.ParentActivity is not null);
    }

    [Fact]
    public void A_cold_start_names_the_engines_phase_in_words_and_moves_forward()
    {
        var spec = new EngineSpec { Backend = "tiny", Model = "tiny-16m", Workers = 2 };
        string?[] phases = [null, "plan", "spawn_cores", "load_model", "warmup", "bind"];

        var described = phases.Select(p => StartupPhase.Describe(p, spec)).ToList();

        Assert.Equal("Starting 2 core processes", described[2].Status);
        Assert.Equal("Loading tiny-16m into the cores: weights and KV cache", described[3].Status);
        Assert.Equal(described.Select(d => d.Percent).Order(), described.Select(d => d.Percent));
        Assert.All(described, d => Assert.DoesNotContain("_", d.Status));
        Assert.Equal("Engine phase compile", StartupPhase.Describe("compile", spec).Status);
    }

    [Fact]
    public async Task A_dump_writes_the_criu_command_line_for_debug()
    {
        var root = Directory.CreateTempSubdirectory("criu-debug-").FullName;
        var observer = new RecordingObserver();
        var runner = new CriuRunner(observer);
        var images = Directory.CreateDirectory(Path.Combine(root, "staging", "images")).FullName;
        var criu = new CriuTool("/bin/false", new Version(4, 2));

        await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            runner.DumpAsync(criu, CriuOptions.ForDump(4100, images, leaveRunning: false), TimeSpan.FromSeconds(10), CancellationToken.None));

        Directory.Delete(root, recursive: true);
        Assert.StartsWith($"/bin/false dump -t 4100 -D {images} -W ", Assert.Single(observer.DebugLines));
    }

    [Theory]
    [InlineData(new[] { "criu", "dump", "-t", "42" }, "criu dump -t 42")]
    [InlineData(new[] { "python3", "-c", "print('a b')" }, "python3 -c 'print('\\''a b'\\'')'")]
    [InlineData(new[] { "sh", "" }, "sh ''")]
    public void A_debug_command_line_reads_back_as_the_same_arguments_in_a_shell(string[] arguments, string line)
    {
        Assert.Equal(line, CommandLine.Format(arguments));
    }

    /// <summary>/proc/PID/io of a replica's two processes in the fake /proc: <paramref name="first"/> bytes read, then <paramref name="after"/>.</summary>
    private static void WriteIo(CheckpointWorld world, int pid, long first, long after)
    {
        foreach (var process in new[] { pid, pid + 1 })
        {
            var directory = Directory.CreateDirectory(Path.Combine(world.Root, "proc", process.ToString())).FullName;
            File.WriteAllText(Path.Combine(directory, "io"), $"rchar: {first}\nwchar: 0\nread_bytes: 0\n");
            _ = Task.Delay(TransferMeter.Interval * 3).ContinueWith(
                _ => File.WriteAllText(Path.Combine(directory, "io"), $"rchar: {after}\nwchar: 0\nread_bytes: 0\n"), TaskScheduler.Default);
        }
    }
}
