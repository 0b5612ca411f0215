namespace CriuCheckpoint.Core;

/// <summary>One sample of a transfer: the bytes moved so far against those expected, the recent rate and the time left.</summary>
internal sealed record TransferSample(long Bytes, long Total, double BytesPerSecond, TimeSpan? Remaining)
{
    /// <summary>How much of the total has moved, 0 to 1 (an estimate that was too low stops at 1).</summary>
    public double Fraction => Total <= 0 ? 0 : Math.Min(1, (double)Bytes / Total);

    /// <summary>Where a progress bar that goes from <paramref name="from"/> to <paramref name="to"/> percent over the transfer stands.</summary>
    public int PercentBetween(int from, int to) => from + (int)((to - from) * Fraction);

    /// <summary>"criu dump: 1.2 GiB of 4.5 GiB written, 350 MiB/s".</summary>
    public string Describe(string what, string verb) =>
        $"{what}: {Size(Bytes)} of {Size(Total)} {verb}" + (BytesPerSecond > 0 ? $", {Size((long)BytesPerSecond)}/s" : string.Empty);

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0} MiB",
        _ => $"{bytes / (double)(1L << 10):0} KiB",
    };
}

/// <summary>
/// The rate and the time left of a transfer, from samples of its byte count. The rate is over the last few seconds, so
/// a transfer that speeds up or stalls shows it within that time, not diluted by everything before.
/// </summary>
internal sealed class TransferRate
{
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(3);

    private readonly long total;
    private readonly Queue<(TimeSpan At, long Bytes)> samples = new();
    private long bytes;

    public TransferRate(long total) => this.total = total;

    /// <summary>Adds the byte count read at <paramref name="at"/> (time since the transfer began) and returns the sample it makes.</summary>
    public TransferSample Add(TimeSpan at, long count)
    {
        // What was moved is never taken back: a counter read between two writes may lag the one read before.
        bytes = Math.Max(bytes, count);
        samples.Enqueue((at, bytes));
        while (samples.Count > 1 && at - samples.Peek().At > Window)
        {
            samples.Dequeue();
        }

        var (since, then) = samples.Peek();
        var seconds = (at - since).TotalSeconds;
        var rate = seconds > 0 ? (bytes - then) / seconds : 0;
        TimeSpan? remaining = rate > 0 && bytes < total ? TimeSpan.FromSeconds((total - bytes) / rate) : null;
        return new TransferSample(bytes, total, rate, remaining);
    }
}

/// <summary>
/// Samples a byte count every <see cref="Interval"/> while an operation runs (criu dump or restore), on the thread pool,
/// and reports each sample; disposing it stops the sampling and waits for the last report.
/// </summary>
internal sealed class TransferMeter : IAsyncDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly CancellationTokenSource stop = new();
    private readonly Task sampling;

    private TransferMeter(Func<long> read, long total, Action<TransferSample> report, TimeProvider clock) =>
        sampling = SampleAsync(read, total, report, clock, stop.Token);

    /// <summary>
    /// <paramref name="read"/> runs on a timer while the operation changes what it reads: a read that fails on a file or
    /// a process that went away is skipped, never the operation's failure.
    /// </summary>
    public static TransferMeter Start(Func<long> read, long total, Action<TransferSample> report, TimeProvider clock) => new(read, total, report, clock);

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync().ConfigureAwait(false);
        await sampling.ConfigureAwait(false);
        stop.Dispose();
    }

    private static async Task SampleAsync(Func<long> read, long total, Action<TransferSample> report, TimeProvider clock, CancellationToken cancellationToken)
    {
        var started = clock.GetTimestamp();
        var rate = new TransferRate(total);
        rate.Add(TimeSpan.Zero, TryRead(read) ?? 0);
        try
        {
            while (true)
            {
                await Task.Delay(Interval, cancellationToken).ConfigureAwait(false);
                if (TryRead(read) is { } bytes)
                {
                    report(rate.Add(clock.GetElapsedTime(started), bytes));
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped: the operation it measured has ended.
        }
    }

    private static long? TryRead(Func<long> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
