using System.Text.Json;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Once for all replicas (they share the page cache), after Validate: when the engine reads its weights back from the
/// model's files at resume (engine arg weights_from_source, the model a local directory), starts reading those files
/// into the page cache in the background, so on a cold node the read overlaps VerifyImages, criu and the CUDA restore
/// instead of following them. CheckpointRestorer stops it and waits for it before the restore returns; its
/// compensation does the same when a later once-step fails.
/// </summary>
internal sealed class PrefetchWeightsStep : IStep<RestoreRequest>
{
    /// <summary>The engine arg of the torch and vllm backends that leaves the weights out of the image.</summary>
    public const string WeightsFromSource = "weights_from_source";

    public string Name => "PrefetchWeights";

    public int PercentAtStart => 1;

    public string Describe(RestoreRequest context) => "Reading the model's weights into the page cache, in the background";

    public Task<StepOutcome> RunAsync(RestoreRequest context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        if (SourceDirectory(context.Checkpoint.Manifest) is not { } directory)
        {
            return Task.FromResult(StepOutcome.Continue);
        }

        if (context.WeightHolder is { } holder)
        {
            context.Observer.Verbose($"Weight prefetch: not needed; replicas map their weights from weight holder {holder.Name}.");
            return Task.FromResult(StepOutcome.Continue);
        }

        if (context.Options.SkipWeightPrefetch)
        {
            context.Observer.Verbose($"Weight prefetch: skipped (-SkipWeightPrefetch); each engine reads its weights from {directory} when it resumes.");
            return Task.FromResult(StepOutcome.Continue);
        }

        context.Prefetch = WeightPrefetch.Start(context.Services.WeightPrefetcher, directory, context.Observer);
        rollback.Push("stop the weight prefetch", () => context.StopPrefetchAsync());
        return Task.FromResult(StepOutcome.Continue);
    }

    /// <summary>
    /// The directory the engine reads its weights from when it resumes: the manifest's model, when its engine args
    /// say weights_from_source and it is an absolute path; null for weights in the image or a model given by name.
    /// </summary>
    public static string? SourceDirectory(CheckpointManifest manifest)
    {
        var spec = manifest.Spec;
        var fromSource = spec.EngineArgs.TryGetValue(WeightsFromSource, out var value) && value is true or JsonElement { ValueKind: JsonValueKind.True };
        return fromSource && Path.IsPathFullyQualified(spec.Model) ? spec.Model : null;
    }
}
