using System.Diagnostics;

namespace CriuCheckpoint.Link;

/// <summary>Round-trip times of the link to one engine (health requests answered by its socket thread).</summary>
public sealed class LinkLatency
{
    public string EngineName { get; init; } = string.Empty;

    public int Count { get; init; }

    public TimeSpan Minimum { get; init; }

    public TimeSpan Median { get; init; }

    public TimeSpan P99 { get; init; }

    public TimeSpan Maximum { get; init; }

    internal static async Task<LinkLatency> MeasureAsync(EngineLink link, string engineName, int count, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // The first request pays for the TCP connect and handshake; it is not a round trip of a live link.
        await link.CallAsync<HealthReply>(LinkProtocol.Ops.Health, timeout, cancellationToken).ConfigureAwait(false);
        var samples = new double[count];
        for (var i = 0; i < count; i++)
        {
            var watch = Stopwatch.StartNew();
            await link.CallAsync<HealthReply>(LinkProtocol.Ops.Health, timeout, cancellationToken).ConfigureAwait(false);
            samples[i] = watch.Elapsed.TotalMilliseconds;
        }

        Array.Sort(samples);
        return new LinkLatency
        {
            EngineName = engineName,
            Count = count,
            Minimum = TimeSpan.FromMilliseconds(samples[0]),
            Median = TimeSpan.FromMilliseconds(Percentile(samples, 0.50)),
            P99 = TimeSpan.FromMilliseconds(Percentile(samples, 0.99)),
            Maximum = TimeSpan.FromMilliseconds(samples[^1]),
        };
    }

    /// <summary>Nearest-rank percentile of sorted samples.</summary>
    public static double Percentile(double[] sorted, double fraction) =>
        sorted[Math.Clamp((int)Math.Ceiling(fraction * sorted.Length) - 1, 0, sorted.Length - 1)];
}
