namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// After the publish: with -LeaveRunning the engine gets its GPU state back and serves again, which is exactly what
/// undoing CheckpointCuda and Prepare does, so those compensations run now as the way forward. Without it the dump has
/// ended the tree: wait until every process is gone and forget the engine.
/// </summary>
internal sealed class ResumeOrRetireStep : IStep<SaveContext>
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);

    public string Name => "ResumeOrRetire";

    public int PercentAtStart => 90;

    public string Describe(SaveContext context) => context.Options.LeaveRunning ? "Resuming the engine" : "Waiting for the dumped engine to exit";

    public async Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var engines = context.Services.Engines;
        if (!context.Options.LeaveRunning)
        {
            await engines.WaitForExitAsync(context.Tree, ExitTimeout, CancellationToken.None).ConfigureAwait(false);
            engines.Forget(context.Record);
            return StepOutcome.Continue;
        }

        await rollback.RunNowAsync(CheckpointCudaStep.Compensation).ConfigureAwait(false);
        var started = context.Services.Clock.GetTimestamp();
        await rollback.RunNowAsync(PrepareStep.Compensation).ConfigureAwait(false);
        context.Serving = await engines.DescribeAsync(context.Record, HelloTimeout, CancellationToken.None).ConfigureAwait(false);
        context.Timings.Add("resume", context.Services.Clock.GetElapsedTime(started));
        return StepOutcome.Continue;
    }
}
