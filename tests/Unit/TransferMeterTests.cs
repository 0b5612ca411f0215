using CriuCheckpoint.Core;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The bytes, rate and time left that the save and restore progress bars show while criu runs.</summary>
public sealed class TransferMeterTests
{
    private static TimeSpan Seconds(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void A_steady_transfer_has_its_rate_and_the_time_the_rest_takes_at_that_rate()
    {
        var rate = new TransferRate(total: 1000);
        rate.Add(Seconds(0), 0);
        rate.Add(Seconds(1), 100);

        var sample = rate.Add(Seconds(2), 200);

        Assert.Equal(100, sample.BytesPerSecond, precision: 6);
        Assert.Equal(Seconds(8), sample.Remaining);
        Assert.Equal(0.2, sample.Fraction, precision: 6);
    }

    [Fact]
    public void The_rate_is_that_of_the_last_seconds_so_a_slowdown_shows_within_the_window()
    {
        var rate = new TransferRate(total: 10_000);
        rate.Add(Seconds(0), 0);
        rate.Add(Seconds(1), 1000);
        rate.Add(Seconds(2), 2000);
        for (var second = 3; second <= 6; second++)
        {
            rate.Add(Seconds(second), 2000 + ((second - 2) * 100));
        }

        var sample = rate.Add(Seconds(7), 2500);

        // Seconds 4 to 7 of the window moved 100 bytes each.
        Assert.Equal(100, sample.BytesPerSecond, precision: 6);
        Assert.Equal(Seconds(75), sample.Remaining);
    }

    [Fact]
    public void A_first_sample_and_a_stalled_transfer_have_no_time_left()
    {
        var rate = new TransferRate(total: 1000);

        Assert.Null(rate.Add(Seconds(0), 0).Remaining);
        for (var second = 1; second <= 5; second++)
        {
            rate.Add(Seconds(second), 500);
        }

        var stalled = rate.Add(Seconds(6), 500);

        Assert.Equal(0, stalled.BytesPerSecond);
        Assert.Null(stalled.Remaining);
    }

    [Fact]
    public void Past_an_estimate_that_was_too_low_the_bar_stays_full_with_no_time_left()
    {
        var rate = new TransferRate(total: 100);
        rate.Add(Seconds(0), 0);

        var sample = rate.Add(Seconds(1), 150);

        Assert.Equal(1, sample.Fraction);
        Assert.Equal(70, sample.PercentBetween(30, 70));
        Assert.Null(sample.Remaining);
    }

    [Fact]
    public void A_counter_read_lower_than_before_does_not_take_back_what_was_moved()
    {
        var rate = new TransferRate(total: 1000);
        rate.Add(Seconds(0), 0);
        rate.Add(Seconds(1), 400);

        var sample = rate.Add(Seconds(2), 300);

        Assert.Equal(400, sample.Bytes);
    }

    [Theory]
    [InlineData(0, 30)]
    [InlineData(250, 40)]
    [InlineData(1000, 70)]
    public void The_bar_moves_through_its_steps_share_as_the_bytes_come(long bytes, int percent)
    {
        Assert.Equal(percent, new TransferSample(bytes, 1000, 0, null).PercentBetween(30, 70));
    }

    [Fact]
    public void A_sample_reads_as_bytes_of_the_total_and_the_rate()
    {
        var sample = new TransferSample(3L << 29, 3L << 30, 350 << 20, Seconds(3));

        Assert.Equal("criu dump: 1.5 GiB of 3.0 GiB written, 350 MiB/s", sample.Describe("criu dump", "written"));
        Assert.Equal("criu restore: 12 KiB of 40 MiB read", new TransferSample(12 << 10, 40 << 20, 0, null).Describe("criu restore", "read"));
    }

    [Fact]
    public async Task The_meter_samples_until_it_is_disposed_and_reports_the_rate_on_its_clock()
    {
        // Each reading of the clock is one second after the one before; each byte count 100 more than the one before.
        var clock = new SteppingClock(Seconds(1));
        long bytes = 0;
        var samples = new List<TransferSample>();

        await using (TransferMeter.Start(() => Interlocked.Add(ref bytes, 100), 10_000, sample => { lock (samples) { samples.Add(sample); } }, clock))
        {
            while (Volatile.Read(ref bytes) < 500)
            {
                await Task.Delay(TransferMeter.Interval);
            }
        }

        var count = samples.Count;
        await Task.Delay(TransferMeter.Interval * 3);
        Assert.InRange(count, 3, 100);
        Assert.Equal(count, samples.Count);
        Assert.All(samples, s => Assert.Equal(100, s.BytesPerSecond, precision: 6));
        Assert.Equal(Seconds((10_000 - samples[^1].Bytes) / 100.0), samples[^1].Remaining);
    }

    [Fact]
    public async Task A_reading_that_fails_is_skipped_and_the_sampling_goes_on()
    {
        var calls = 0;
        var samples = new List<TransferSample>();

        await using (TransferMeter.Start(
            () => Interlocked.Increment(ref calls) == 2 ? throw new DirectoryNotFoundException("gone") : calls * 10L,
            1000, sample => { lock (samples) { samples.Add(sample); } }, TimeProvider.System))
        {
            while (Volatile.Read(ref calls) < 4)
            {
                await Task.Delay(TransferMeter.Interval);
            }
        }

        Assert.NotEmpty(samples);
        Assert.DoesNotContain(samples, s => s.Bytes == 20);
    }

    /// <summary>A clock whose every reading is <paramref name="step"/> after the one before.</summary>
    private sealed class SteppingClock(TimeSpan step) : TimeProvider
    {
        private long now;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Add(ref now, step.Ticks);
    }
}
