using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Refuses a store that cannot take the image, measured when it is known: after the engine has released its caches
/// and the driver has moved the GPU state into host memory, what the dump writes is the tree's anonymous memory now.
/// Nothing to undo; a refusal unwinds the CUDA checkpoint and the prepare.
/// </summary>
internal sealed class CheckSpaceStep : IStep<SaveContext>
{
    /// <summary>CRIU's page maps, core and file images, and the log snapshot, beyond the memory itself.</summary>
    private const long Margin = 16L << 20;

    public string Name => "CheckSpace";

    public int PercentAtStart => 28;

    public string Describe(SaveContext context) => "Checking the store has room for the image";

    public Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var host = context.Services.Host;
        var memory = host.DumpedBytes(context.Tree.ProcessIds);
        // Page-aligned maps and the other images grow with the memory: 5% covers them in every image measured.
        context.EstimatedImageBytes = memory + (memory / 20) + Margin;
        var available = host.AvailableBytes(context.Store.Path);
        context.Observer.Verbose($"The image needs about {context.EstimatedImageBytes >> 20} MiB; {context.Store.Path} has {available >> 20} MiB free.");
        if (available < context.EstimatedImageBytes)
        {
            throw new CriuCheckpointException(ErrorIds.InsufficientSpace, FailureKind.ResourceUnavailable,
                $"The store {context.Store.Path} has {available >> 20} MiB free; the checkpoint needs about {context.EstimatedImageBytes >> 20} MiB "
                + $"({memory >> 20} MiB of process memory after the caches were released).", context.Store.Path);
        }

        return Task.FromResult(StepOutcome.Continue);
    }
}
