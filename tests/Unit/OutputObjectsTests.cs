using System.Reflection;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// What the cmdlets write is plain .NET: every property a real one (so it exists in any runspace, thread job or
/// -Parallel block), durations in seconds, and nothing internal among the public properties PowerShell adapts.
/// </summary>
public sealed class OutputObjectsTests
{
    private static readonly Type[] Written =
    {
        typeof(EngineInfo), typeof(EngineCheckpoint), typeof(GenerationResult), typeof(GenerationChunk), typeof(LinkLatency),
        typeof(CheckpointVerification), typeof(SupportReport), typeof(Gpu.GpuProcess), typeof(ProcessNode), typeof(PhaseTimings),
    };

    [Fact]
    public void A_generation_result_has_its_rate_and_the_name_of_its_engine()
    {
        var result = new GenerationResult { CompletionTokens = 24, DurationSeconds = 0.2, Engine = new EngineInfo { Name = "api" } };

        Assert.Equal(120.0, result.TokensPerSecond!.Value, 9);
        Assert.Equal("api", result.EngineName);
    }

    [Fact]
    public void A_generation_that_took_no_measurable_time_has_no_rate() =>
        Assert.Null(new GenerationResult { CompletionTokens = 1 }.TokensPerSecond);

    [Fact]
    public void An_engine_has_its_process_ids_and_startup_seconds()
    {
        var startup = PhaseTimings.FromSeconds(new Dictionary<string, double> { ["launch"] = 0.5 }, 1.25);
        var engine = new EngineInfo
        {
            ProcessTree = new[] { new ProcessNode(10, 1, 10, "python3", "", 0), new ProcessNode(11, 10, 11, "python3", "", 0) },
            StartupTime = startup,
        };

        Assert.Equal(new[] { 10, 11 }, engine.ProcessIds);
        Assert.Equal(1.25, engine.StartupSeconds);
        Assert.Null(new EngineInfo().StartupSeconds);
    }

    [Fact]
    public void An_engine_as_a_string_is_its_name_state_and_endpoint()
    {
        Assert.Equal("api Ready tcp://127.0.0.1:4000", new EngineInfo { Name = "api", State = EngineState.Ready, Endpoint = "tcp://127.0.0.1:4000" }.ToString());
        Assert.Equal("api Stopped", new EngineInfo { Name = "api", State = EngineState.Stopped }.ToString());
    }

    [Fact]
    public void A_checkpoint_has_its_save_seconds_and_is_compatible_only_once_compared()
    {
        var checkpoint = new EngineCheckpoint { Timings = PhaseTimings.FromSeconds(new Dictionary<string, double>(), 0.75) };

        Assert.Equal(0.75, checkpoint.SaveSeconds);
        Assert.Null(checkpoint.Compatible);
        Assert.True((checkpoint with { CompatibilityIssues = Array.Empty<CompatibilityIssue>() }).Compatible);
    }

    [Fact]
    public void Link_round_trips_as_a_string_are_in_milliseconds() =>
        Assert.Equal("api: p50 0.684 ms, p99 0.812 ms (100 round trips)",
            new LinkLatency { EngineName = "api", Count = 100, MedianSeconds = 0.000684, P99Seconds = 0.000812 }.ToString());

    [Fact]
    public void A_support_report_as_a_string_says_whether_this_host_is_supported_and_why_not()
    {
        Assert.Equal("Supported", new SupportReport().ToString());
        Assert.Equal("Not supported: no criu; not root", new SupportReport { Problems = new[] { "no criu", "not root" } }.ToString());
    }

    [Fact]
    public void No_written_object_has_a_public_timespan_or_a_public_registry_record()
    {
        var offending = Written.SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            .Where(p => p.PropertyType == typeof(TimeSpan) || p.PropertyType == typeof(TimeSpan?) || p.PropertyType == typeof(EngineRecord))
            .Select(p => $"{p.DeclaringType!.Name}.{p.Name}");

        Assert.Empty(offending);
    }
}
