using System.Collections;
using CriuCheckpoint.Core;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>PhaseTimings as PowerShell reads it: an ordered, read-only map from phase to seconds.</summary>
public sealed class PhaseTimingsTests
{
    [Fact]
    public void Phases_keep_the_order_they_ran_in_with_their_seconds()
    {
        var timings = Timings(("validate", 20), ("verify", 546), ("criu-restore", 291));

        Assert.Equal(new[] { "validate", "verify", "criu-restore" }, timings.Keys);
        Assert.Equal(new[] { 0.020, 0.546, 0.291 }, timings.Values);
        Assert.Equal(0.546, timings["verify"]);
    }

    [Fact]
    public void Timings_kept_as_seconds_read_back_to_the_tick()
    {
        var random = new Random(1);
        for (var i = 0; i < 10_000; i++)
        {
            var measured = TimeSpan.FromTicks(random.NextInt64(1, 100_000_000));

            var kept = PhaseTimings.FromSeconds([new("resume", measured.TotalSeconds)], measured.TotalSeconds);

            Assert.Equal(measured.TotalSeconds, kept.TotalSeconds);
            Assert.Equal(measured.TotalSeconds, kept["resume"]);
        }
    }

    [Fact]
    public void A_phase_that_runs_again_adds_to_its_time()
    {
        var timings = Timings(("hello", 10), ("resume", 5), ("hello", 30));

        Assert.Equal(new[] { "hello", "resume" }, timings.Keys);
        Assert.Equal(0.040, timings["hello"], 9);
    }

    [Fact]
    public void An_unknown_phase_is_named_with_the_phases_there_are()
    {
        var failure = Assert.Throws<KeyNotFoundException>(() => Timings(("launch", 1))["weights"]);

        Assert.Contains("launch", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void As_a_non_generic_dictionary_it_enumerates_phases_in_order_with_seconds()
    {
        IDictionary timings = Timings(("b", 2000), ("a", 1000));

        var entries = new List<(object Key, object? Value)>();
        for (var e = timings.GetEnumerator(); e.MoveNext();)
        {
            entries.Add((e.Key, e.Value));
        }

        Assert.Equal(new (object, object?)[] { ("b", 2.0), ("a", 1.0) }, entries);
        Assert.Equal(1.0, timings["a"]);
        Assert.Null(timings["missing"]);
        Assert.True(timings.IsReadOnly);
        Assert.Throws<NotSupportedException>(() => timings.Add("c", 3.0));
        Assert.Throws<NotSupportedException>(() => timings.Remove("a"));
    }

    [Fact]
    public void Timings_kept_as_seconds_read_back_the_same()
    {
        var timings = PhaseTimings.FromSeconds(new Dictionary<string, double> { ["launch"] = 0.25, ["hello"] = 0.5 }, 1.0);

        Assert.Equal(new[] { "launch", "hello" }, timings.Keys);
        Assert.Equal(0.25, timings["launch"]);
        Assert.Equal(1.0, timings.TotalSeconds);
    }

    [Fact]
    public void As_a_string_it_is_the_total_and_every_phase()
    {
        var timings = Timings(("launch", 13), ("hello", 288));
        timings.Total = TimeSpan.FromMilliseconds(1212);

        Assert.Equal("1.212 s (launch 0.013, hello 0.288)", timings.ToString());
    }

    [Fact]
    public void Work_beside_the_phases_is_neither_a_phase_nor_part_of_the_total()
    {
        var timings = Timings(("criu-restore", 1400), ("resume", 940));
        timings.Total = TimeSpan.FromMilliseconds(2400);

        timings.AddBackground(new BackgroundWork("weight-prefetch", 9.812, 16_060_000_000));

        Assert.Equal(new[] { "criu-restore", "resume" }, timings.Keys);
        Assert.Equal(2.34, timings.Values.Sum(), 9);
        Assert.Equal(2.4, timings.TotalSeconds);
        Assert.False(((IDictionary)timings).Contains("weight-prefetch"));
        Assert.Equal(16_060_000_000 / 9.812, Assert.Single(timings.Background).BytesPerSecond);
        Assert.Equal("2.400 s (criu-restore 1.400, resume 0.940; beside them: weight-prefetch 9.812 s, 16.06 GB at 1.64 GB/s)", timings.ToString());
    }

    [Fact]
    public void Work_beside_the_phases_is_read_back_with_them()
    {
        var work = new BackgroundWork("weight-prefetch", 0.5, 1 << 30);

        var timings = PhaseTimings.FromSeconds(new Dictionary<string, double> { ["resume"] = 0.25 }, 1.0, [work]);

        Assert.Equal(new[] { "resume" }, timings.Keys);
        Assert.Equal(work, Assert.Single(timings.Background));
    }

    private static PhaseTimings Timings(params (string Phase, int Milliseconds)[] phases)
    {
        var timings = new PhaseTimings();
        foreach (var (phase, milliseconds) in phases)
        {
            timings.Add(phase, TimeSpan.FromMilliseconds(milliseconds));
        }

        return timings;
    }
}
