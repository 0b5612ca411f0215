using System.Globalization;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// A weight prefetch running beside a restore (PrefetchWeightsStep starts it). It says through the restore's observer
/// when it starts and ends and at what rate; <see cref="StopAsync"/> stops its readers and waits for them, so it never
/// outlives the restore. It never fails a restore: a directory or file it cannot read is a warning, and each engine
/// then reads its weights from the disk itself, as it would without a prefetch.
/// </summary>
internal sealed class WeightPrefetch : IDisposable
{
    /// <summary>Its name among the restore's timings, beside the phases.</summary>
    public const string TimingName = "weight-prefetch";

    private readonly CancellationTokenSource stop = new();
    private readonly Task<WeightPrefetchResult?> reading;

    /// <summary>
    /// The files are opened on the caller's thread, before the step ends (an open and an fstat each); only their reads
    /// go on in the background, on the prefetcher's own threads.
    /// </summary>
    private WeightPrefetch(IWeightPrefetcher prefetcher, string directory, IOperationObserver observer) =>
        reading = ReadAsync(prefetcher, directory, observer, stop.Token);

    public static WeightPrefetch Start(IWeightPrefetcher prefetcher, string directory, IOperationObserver observer)
    {
        observer.Verbose($"Weight prefetch: reading the *{WeightPrefetcher.Extension} files of {directory} into the page cache, beside criu and the CUDA restore.");
        return new WeightPrefetch(prefetcher, directory, observer);
    }

    /// <summary>
    /// Stops the readers between two reads and waits for them; what they read is returned, null when the prefetch
    /// failed (it warned). Once every replica has resumed its engine has read its weights, so what is left unread
    /// would help nobody.
    /// </summary>
    public async Task<WeightPrefetchResult?> StopAsync()
    {
        await stop.CancelAsync().ConfigureAwait(false);
        return await reading.ConfigureAwait(false);
    }

    /// <summary>What the timings of a restore show of it, the bytes it read: beside the phases, never one of them.</summary>
    public static BackgroundWork Timing(WeightPrefetchResult result) => new(TimingName, result.Elapsed.TotalSeconds, result.Bytes);

    public void Dispose() => stop.Dispose();

    private static async Task<WeightPrefetchResult?> ReadAsync(IWeightPrefetcher prefetcher, string directory, IOperationObserver observer, CancellationToken token)
    {
        try
        {
            var result = await prefetcher.ReadAsync(directory, token).ConfigureAwait(false);
            foreach (var refusal in result.Refused)
            {
                observer.Verbose($"Weight prefetch: not read, {refusal}.");
            }

            observer.Verbose(Describe(result));
            return result;
        }
        catch (Exception e) when (e is NativeException or IOException or UnauthorizedAccessException)
        {
            observer.Warning($"The weights in {directory} were not prefetched ({e.Message}); each engine reads them from the disk itself.");
            return null;
        }
    }

    private static string Describe(WeightPrefetchResult result)
    {
        var read = $"{BackgroundWork.Gigabytes(result.Bytes)} GB read in {result.Elapsed.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture)} s "
            + $"({BackgroundWork.Gigabytes(result.BytesPerSecond)} GB/s), {BackgroundWork.Gigabytes(result.CachedBytes)} GB in the page cache already";
        return result.Complete
            ? $"Weight prefetch finished: {result.Files} file(s) of {BackgroundWork.Gigabytes(result.FileBytes)} GB, {read}."
            : $"Weight prefetch stopped with the restore: of {BackgroundWork.Gigabytes(result.FileBytes)} GB, {read}.";
    }
}
