using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Runs steps in order under one deadline. When a step fails, is cancelled or runs past the deadline, the compensations
/// pushed so far are unwound, newest first, and the failure is reported with the step it happened in; the unwind itself
/// runs without the cancellation token, so Ctrl+C never interrupts a cleanup.
/// </summary>
internal sealed class StepPipeline<TContext>
{
    private readonly IReadOnlyList<IStep<TContext>> steps;
    private readonly IOperationObserver observer;

    public StepPipeline(IReadOnlyList<IStep<TContext>> steps, IOperationObserver observer)
    {
        this.steps = steps;
        this.observer = observer;
    }

    public IReadOnlyList<string> StepNames => steps.Select(s => s.Name).ToArray();

    /// <summary>
    /// Runs the steps, reporting progress under <paramref name="activity"/>. Past the deadline the step in flight is
    /// cancelled and the operation fails with the deadline's ErrorId.
    /// </summary>
    public async Task RunAsync(TContext context, string activity, Deadline limit, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (limit.Timeout != System.Threading.Timeout.InfiniteTimeSpan)
        {
            deadline.CancelAfter(limit.Timeout);
        }

        var rollback = new RollbackStack();
        var current = steps[0];
        try
        {
            foreach (var step in steps)
            {
                current = step;
                observer.Progress(activity, step.Describe(context), step.PercentAtStart);
                if (await step.RunAsync(context, rollback, deadline.Token).ConfigureAwait(false) == StepOutcome.Finished)
                {
                    break;
                }
            }

            rollback.Clear();
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            await rollback.UnwindAsync(observer).ConfigureAwait(false);
            throw new CriuCheckpointException(limit.ErrorId, FailureKind.OperationTimeout,
                $"{limit.What} did not finish within {limit.Timeout.TotalSeconds:0.#} s ({limit.Parameter}); it was stopped in step {current.Name} and rolled back.",
                current.Name);
        }
        catch
        {
            await rollback.UnwindAsync(observer).ConfigureAwait(false);
            throw;
        }
    }
}

/// <summary>How long a whole operation may take, and how its running out is named.</summary>
internal sealed record Deadline(TimeSpan Timeout, string ErrorId, string What, string Parameter)
{
    public static Deadline None { get; } = new(System.Threading.Timeout.InfiniteTimeSpan, string.Empty, string.Empty, string.Empty);
}
