using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// criu dump of the whole tree into a private staging directory inside the store (the same file system, so publishing
/// is one rename). Undone by deleting the staging directory: nothing half-written is ever visible. While criu runs, the
/// progress bar shows the images written so far against the size CheckSpace expects.
/// </summary>
internal sealed class DumpStep : IStep<SaveContext>
{
    public const string Compensation = "delete the staging directory";

    public string Name => "Dump";

    public int PercentAtStart => 30;

    public string Describe(SaveContext context) => $"criu dump of {context.Tree.Processes.Count} processes";

    public async Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var staging = context.Store.CreateStaging(context.Record.ConfigHash);
        context.Staging = staging;
        rollback.Push(Compensation, () => CheckpointStore.DeleteStaging(staging));
        var started = context.Services.Clock.GetTimestamp();
        var images = CheckpointStore.ImagesPath(staging);
        var options = CriuOptions.ForDump(context.Record.RootProcessId, images, context.Options.LeaveRunning);
        var meter = TransferMeter.Start(() => BytesIn(images), context.EstimatedImageBytes, sample => Report(context, sample), context.Services.Clock);
        await using (meter.ConfigureAwait(false))
        {
            await context.Services.Criu.DumpAsync(context.Criu!, options, context.Options.DumpTimeout, cancellationToken).ConfigureAwait(false);
        }

        // CRIU creates its images 0644 (its umask): a checkpoint holds the engine's memory, so it is readable by its owner only.
        CheckpointStore.MakePrivate(staging);
        context.Timings.Add("criu-dump", context.Services.Clock.GetElapsedTime(started));
        return StepOutcome.Continue;
    }

    private void Report(SaveContext context, TransferSample sample) =>
        context.Observer.Progress(new ProgressReport(context.Activity, sample.Describe("criu dump", "written"), sample.PercentBetween(PercentAtStart, HashImagesStep.Start))
        {
            Remaining = sample.Remaining,
        });

    /// <summary>What criu has written so far: the sizes of the files in the images directory, each read as it is now.</summary>
    internal static long BytesIn(string directory)
    {
        long bytes = 0;
        try
        {
            foreach (var file in new DirectoryInfo(directory).EnumerateFiles())
            {
                try
                {
                    bytes += file.Length;
                }
                catch (IOException)
                {
                    // criu replaced or removed it since the listing: the next sample counts what took its place.
                }
            }
        }
        catch (IOException)
        {
            // The directory is not there yet, or went while it was listed.
        }

        return bytes;
    }
}
