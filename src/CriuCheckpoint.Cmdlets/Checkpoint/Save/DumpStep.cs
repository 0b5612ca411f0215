namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// criu dump of the whole tree into a private staging directory inside the store (the same file system, so publishing
/// is one rename). Undone by deleting the staging directory: nothing half-written is ever visible.
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
        var options = CriuOptions.ForDump(context.Record.RootProcessId, CheckpointStore.ImagesPath(staging), context.Options.LeaveRunning);
        await context.Services.Criu.DumpAsync(context.Criu!, options, context.Options.DumpTimeout, cancellationToken).ConfigureAwait(false);
        // CRIU creates its images 0644 (its umask): a checkpoint holds the engine's memory, so it is readable by its owner only.
        CheckpointStore.MakePrivate(staging);
        context.Timings.Add("criu-dump", context.Services.Clock.GetElapsedTime(started));
        return StepOutcome.Continue;
    }
}
