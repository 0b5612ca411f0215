namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// One rename makes the staging directory &lt;store&gt;/&lt;config-hash&gt;. When two saves race, the first rename wins and
/// the loser returns the winner's checkpoint; -Force first renames the old one out of the way, so readers see the old
/// checkpoint or the new one, never a mix.
/// </summary>
internal sealed class PublishStep : IStep<SaveContext>
{
    public string Name => "Publish";

    public int PercentAtStart => 85;

    public string Describe(SaveContext context) => $"Publishing {context.Store.CheckpointPath(context.Record.ConfigHash)}";

    public Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var store = context.Store;
        var configHash = context.Record.ConfigHash;
        var target = store.CheckpointPath(configHash);
        if (context.Options.Force && Directory.Exists(target))
        {
            var retired = store.NewStagingName(configHash);
            Directory.Move(target, retired);
            CheckpointStore.DeleteStaging(retired);
        }

        if (!store.TryPublish(context.Staging!, configHash))
        {
            context.Observer.Warning($"Another save published {target} first; this dump was discarded and that checkpoint is returned.");
            CheckpointStore.DeleteStaging(context.Staging!);
        }

        context.Staging = null;
        // The save's own timings, which the steps after this one complete.
        context.Checkpoint = CheckpointStore.Open(target) with { Timings = context.Timings };
        context.Timings.Add("publish", context.Services.Clock.GetElapsedTime(started));
        return Task.FromResult(StepOutcome.Continue);
    }
}
