using System.Globalization;

namespace CriuCheckpoint.Core;

/// <summary>
/// Work an operation did beside its phases, overlapping them (a restore's weight prefetch), with its own seconds and
/// the bytes it moved: neither one of the phases nor part of their total.
/// </summary>
public sealed record BackgroundWork(string Name, double Seconds, long Bytes)
{
    public double BytesPerSecond => Seconds > 0 ? Bytes / Seconds : 0;

    /// <summary>"weight-prefetch 9.812 s, 16.06 GB at 1.64 GB/s".</summary>
    public override string ToString() =>
        $"{Name} {Seconds.ToString("0.000", CultureInfo.InvariantCulture)} s, {Gigabytes(Bytes)} GB at {Gigabytes(BytesPerSecond)} GB/s";

    /// <summary>Bytes as decimal gigabytes with two decimals, as docs/performance.md gives sizes and rates.</summary>
    internal static string Gigabytes(double bytes) => (bytes / 1e9).ToString("0.00", CultureInfo.InvariantCulture);
}
