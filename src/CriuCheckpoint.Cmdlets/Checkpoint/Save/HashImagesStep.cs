namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The size and XXH128 of every image CRIU wrote, hashed on every core at once, for the manifest: a restore, an import
/// and Test-EngineCheckpoint compare them before CRIU reads a byte. The files were just written, so they are read from
/// the page cache. Nothing to undo: it only reads the staging directory.
/// </summary>
internal sealed class HashImagesStep : IStep<SaveContext>
{
    public string Name => "HashImages";

    public const int Start = 70;

    public int PercentAtStart => Start;

    public string Describe(SaveContext context) => "Hashing the images";

    public async Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var files = ImageFiles(CheckpointStore.ImagesPath(context.Staging!));
        var hashes = await FileHash.OfAllAsync(files, cancellationToken).ConfigureAwait(false);
        context.Images = files
            .Select(f => new ImageFile { Path = Path.GetFileName(f), Size = new FileInfo(f).Length, Hash = hashes[f] })
            .ToList();
        var elapsed = context.Services.Clock.GetElapsedTime(started);
        context.Timings.Add("hash", elapsed);
        var bytes = context.Images.Sum(i => i.Size);
        context.Observer.Verbose($"Hashed {context.Images.Count} images ({bytes >> 20} MiB) in {elapsed.TotalSeconds:0.000} s.");
        return StepOutcome.Continue;
    }

    /// <summary>The images CRIU wrote, without its own log and statistics, which no restore reads.</summary>
    private static List<string> ImageFiles(string images) =>
        Directory.EnumerateFiles(images)
            .Where(f => Path.GetFileName(f) != CriuOptions.DumpLog && !Path.GetFileName(f).StartsWith("stats-", StringComparison.Ordinal))
            .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal)
            .ToList();
}
