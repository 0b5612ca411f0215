using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The pure parts of running CRIU: argv from typed options, the namespace wrapper, log excerpts, versions, compatibility.</summary>
public sealed class CriuCommandTests
{
    [Fact]
    public void A_dump_names_the_tree_the_images_and_its_log()
    {
        var options = CriuOptions.ForDump(4242, "/store/.staging-x/images", leaveRunning: false);

        Assert.Equal(new[] { "dump", "-t", "4242", "-D", "/store/.staging-x/images", "-W", "/store/.staging-x/images", "-v4", "-o", "dump.log" },
            options.ToArguments());
        Assert.Equal("/store/.staging-x/images/dump.log", options.LogPath);
    }

    [Fact]
    public void Leave_running_is_one_more_flag()
    {
        Assert.Equal("--leave-running", CriuOptions.ForDump(1, "/i", leaveRunning: true).ToArguments()[^1]);
    }

    [Fact]
    public void A_restore_reads_the_images_and_logs_into_the_replica_directory()
    {
        var options = CriuOptions.ForRestore("/store/abc/images", "/run/cc/replicas/r1", new Version(4, 3), directImageReads: false);

        Assert.Equal(new[] { "restore", "-D", "/store/abc/images", "-W", "/run/cc/replicas/r1", "-v4", "-o", "restore.log" }, options.ToArguments());
        Assert.Equal("/run/cc/replicas/r1/restore.log", options.LogPath);
    }

    [Theory]
    [InlineData("4.3", true)]
    [InlineData("4.3.1", true)]
    [InlineData("5.0", true)]
    [InlineData("4.2.1", false)]
    public void Direct_image_reads_are_asked_only_of_a_criu_that_has_image_io_mode(string criuVersion, bool asked)
    {
        var arguments = CriuOptions.ForRestore("/i", "/r", Version.Parse(criuVersion), directImageReads: true).ToArguments();

        Assert.Equal(asked, arguments.TakeLast(2).SequenceEqual(new[] { "--image-io-mode", "direct" }));
        Assert.Equal(asked ? 1 : 0, arguments.Count(a => a == "--image-io-mode"));
    }

    [Fact]
    public void The_namespace_wrapper_passes_the_mount_plan_positionally_then_the_command_through_the_images_helper()
    {
        var place = new RestoreNamespace
        {
            RecordedRunDirectory = "/run/cc/engines/e1",
            ReplicaDirectory = "/run/cc/replicas/r1",
            Python = "/usr/bin/python3",
        };

        var argv = place.Wrap(new[] { "/opt/criu", "restore", "-D", "/images with space" });

        Assert.Equal(new[] { "unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--net", "--propagation", "private", "sh", "-c" }, argv.Take(10));
        Assert.Contains("shift 5; exec \"$@\"", argv[10]);
        Assert.Equal(new[] { "sh", "/usr/bin/python3", RestoreNamespace.LoopbackScript, "/run/cc/engines", "/run/cc/engines/e1", "/run/cc/replicas/r1" },
            argv.Skip(11).Take(6));
        Assert.Equal(new[] { "/usr/bin/python3", "-I", "-S", RestoreNamespace.ImagesScript, "/run/cc/engines/e1/images.sock" }, argv.Skip(17).Take(5));
        Assert.Equal(new[] { "/opt/criu", "restore", "-D", "/images with space" }, argv.Skip(22));
    }

    [Fact]
    public void In_the_host_pid_namespace_the_wrapper_makes_no_pid_namespace()
    {
        var place = new RestoreNamespace { RecordedRunDirectory = "/a/b", ReplicaDirectory = "/c", Python = "p", HostPidNamespace = true };

        Assert.Equal(new[] { "unshare", "--mount", "--net" }, place.Wrap(new[] { "criu" }).Take(3));
    }

    [Fact]
    public void A_session_records_its_pid_then_execs_the_command_with_its_output_in_a_file()
    {
        var detached = SessionProcess.Arguments(wait: false, "/r/pid", "/r/out", new[] { "criu", "restore" });
        var waited = SessionProcess.Arguments(wait: true, "/r/pid", "/r/out", new[] { "criu", "dump" });

        Assert.Equal("-f", detached[0]);
        Assert.Equal("-w", waited[0]);
        Assert.Equal(new[] { "sh", "-c" }, detached.Skip(1).Take(2));
        Assert.Equal(new[] { "/r/pid", "/r/out", "criu", "restore" }, detached.Skip(4));
    }

    [Fact]
    public void A_criu_failure_quotes_each_error_line_with_the_lines_before_it()
    {
        var log = Enumerable.Range(1, 20).Select(i => $"(00.{i:000}) step {i}").ToList();
        log[11] = "(00.012) Error (criu/files-reg.c:1): File engine.log has bad size 10 (expect 12)";
        log.Insert(3, "(00.003) Error (criu/util.c:1): Can't setup RLIMIT_NOFILE");

        var excerpt = CriuLog.Excerpt(log).Split(Environment.NewLine);

        Assert.Equal(CriuLog.ContextLines + 1, excerpt.Length);
        Assert.EndsWith("has bad size 10 (expect 12)", excerpt[^1]);
        Assert.DoesNotContain(excerpt, l => l.Contains("RLIMIT_NOFILE"));
    }

    [Fact]
    public void A_log_without_an_error_line_is_quoted_by_its_end()
    {
        var log = Enumerable.Range(1, 30).Select(i => $"line {i}").ToList();

        Assert.Equal(Enumerable.Range(21, 10).Select(i => $"line {i}"), CriuLog.Excerpt(log).Split(Environment.NewLine));
    }

    [Theory]
    [InlineData("Version: 4.2.1\nGitID: v4.2.1\n", "4.2.1")]
    [InlineData("Version: 3.17\n", "3.17")]
    [InlineData("criu: unknown option\n", null)]
    public void The_version_is_read_from_criu_version(string output, string? expected)
    {
        Assert.Equal(expected, CriuTool.ParseVersion(output)?.ToString());
    }

    [Fact]
    public void Compatibility_names_each_property_that_differs_with_both_values()
    {
        var manifest = new CheckpointManifest
        {
            Host = new HostFacts { Architecture = "X64", CpuModel = "cpu", Kernel = "6.18.0", CriuVersion = "4.2.1" },
            Gpu = new GpuManifest { DriverVersion = "580.1", DeviceNames = new() { "NVIDIA H200" }, DeviceUuids = new() { "GPU-a", "GPU-b" } },
        };
        var host = new HostFacts { Architecture = "X64", CpuModel = "cpu", Kernel = "6.12.0", CriuVersion = "4.1" };
        var gpus = new GpuSnapshot(new[] { new GpuDevice { Name = "NVIDIA H100", DriverVersion = "580.1" } }, Array.Empty<GpuProcess>());

        var issues = Compatibility.Check(manifest, host, gpus);

        Assert.Equal(new[] { "Kernel", "CriuVersion", "GpuModel", "GpuCount" }, issues.Select(i => i.Property));
        Assert.Equal("Kernel: checkpoint has '6.18.0', this host has '6.12.0'", issues[0].ToString());
    }

    [Fact]
    public void The_same_host_is_compatible()
    {
        var facts = new HostFacts { Architecture = "X64", CpuModel = "cpu", Kernel = "6.18.0", CriuVersion = "4.2.1" };

        Assert.Empty(Compatibility.Check(new CheckpointManifest { Host = facts, Spec = new EngineSpec() }, facts));
    }
}
