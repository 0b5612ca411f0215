using System.Diagnostics;
using System.Globalization;

namespace CriuCheckpoint.Link;

/// <summary>Round-trip times of the link to one engine (health requests answered by its socket thread), in seconds.</summary>
public sealed class LinkLatency
{
    public string EngineName { get; init; } = string.Empty;

    public int Count { get; init; }

    public double MinimumSeconds { get; init; }

    public double MedianSeconds { get; init; }

    public double P99Seconds { get; init; }

    public double MaximumSeconds { get; init; }

    /// <summary>"api: p50 0.684 ms, p99 0.812 ms (100 round trips)".</summary>
    public override string ToString() =>
        $"{EngineName}: p50 {Milliseconds(MedianSeconds)} ms, p99 {Milliseconds(P99Seconds)} ms ({Count} round trips)";

    private static string Milliseconds(double seconds) => (seconds * 1000).ToString("0.000", CultureInfo.InvariantCulture);

    internal static async Task<LinkLatency> MeasureAsync(EngineLink link, string engineName, int count, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // The first request pays for the TCP connect and handshake; it is not a round trip of a live link.
        await link.CallAsync<HealthReply>(LinkProtocol.Ops.Health, timeout, cancellationToken).ConfigureAwait(false);
        var samples = new double[count];
        for (var i = 0; i < count; i++)
        {
            var watch = Stopwatch.StartNew();
            await link.CallAsync<HealthReply>(LinkProtocol.Ops.Health, timeout, cancellationToken).ConfigureAwait(false);
            samples[i] = watch.Elapsed.TotalSeconds;
        }

        Array.Sort(samples);
        return new LinkLatency
        {
            EngineName = engineName,
            Count = count,
            MinimumSeconds = samples[0],
            MedianSeconds = Percentile(samples, 0.50),
            P99Seconds = Percentile(samples, 0.99),
            MaximumSeconds = samples[^1],
        };
    }

    /// <summary>Nearest-rank percentile of sorted samples.</summary>
    public static double Percentile(double[] sorted, double fraction) =>
        sorted[Math.Clamp((int)Math.Ceiling(fraction * sorted.Length) - 1, 0, sorted.Length - 1)];
}
