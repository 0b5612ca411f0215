using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Once for all replicas, before any starts: every image and the log snapshot at the size and with the XXH128 the
/// manifest records (sizes only with -SkipVerify). Reading them warms the page cache that every replica's criu reads
/// next, so most of the cost comes back. Nothing to undo: it only reads.
/// </summary>
internal sealed class VerifyImagesStep : IStep<RestoreRequest>
{
    public string Name => "VerifyImages";

    public int PercentAtStart => 2;

    public string Describe(RestoreRequest context) =>
        context.Options.SkipVerify ? "Checking the sizes of the images" : "Verifying the hashes of the images";

    public async Task<StepOutcome> RunAsync(RestoreRequest context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var checkpoint = context.Checkpoint;
        var result = await CheckpointVerifier.VerifyAsync(checkpoint, context.ReadPath, !context.Options.SkipVerify, context.Services.Clock, cancellationToken)
            .ConfigureAwait(false);
        context.Verified = TimeSpan.FromSeconds(result.Seconds);
        if (!result.Valid)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData,
                $"Checkpoint {checkpoint.Path} is damaged: {result.Problems[0]}. Nothing was restored.", checkpoint.Path,
                details: result.Problems.Count > 1 ? string.Join(Environment.NewLine, result.Problems) : null);
        }

        context.Observer.Verbose(context.Options.SkipVerify
            ? $"Checkpoint {checkpoint.Path}: {result.Files.Count} files at their recorded sizes; hashes not verified (-SkipVerify)."
            : $"Checkpoint {checkpoint.Path}: {result.Files.Count} files ({result.Bytes >> 20} MiB) verified in {result.Seconds:0.000} s.");
        return StepOutcome.Continue;
    }
}
