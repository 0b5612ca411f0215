namespace CriuCheckpoint.Checkpoint;

/// <summary>What a step tells the pipeline when it is done.</summary>
internal enum StepOutcome
{
    /// <summary>Go on with the next step.</summary>
    Continue,

    /// <summary>The operation's result is already known (a checkpoint of this configuration exists): stop here, successfully.</summary>
    Finished,
}

/// <summary>
/// One named step of a save or a restore. A step that changes anything pushes the compensation that undoes it onto
/// the rollback stack before it returns, so a failure in any later step (or Ctrl+C) can unwind it.
/// </summary>
internal interface IStep<in TContext>
{
    /// <summary>The step's name, as in docs/architecture.md and in errors.</summary>
    string Name { get; }

    /// <summary>What the progress bar says while the step runs.</summary>
    string Describe(TContext context);

    /// <summary>How far along the whole operation is when this step starts (0–100).</summary>
    int PercentAtStart { get; }

    Task<StepOutcome> RunAsync(TContext context, RollbackStack rollback, CancellationToken cancellationToken);
}
