using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The replica's run directory: its record, the log snapshot (the file the restored engine has open), the resume FIFO,
/// and on the host the mount point's parent. Undone by killing whatever the replica started and removing the directory.
/// </summary>
internal sealed class MakeRunDirectoryStep : IStep<RestoreContext>
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public string Name => "MakeRunDirectory";

    public int PercentAtStart => 5;

    public string Describe(RestoreContext context) => "Preparing the run directory";

    public Task<StepOutcome> RunAsync(RestoreContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var manifest = context.Manifest;
        var record = context.Services.Registry.Create(manifest.Spec with { Python = context.Request.Python }, context.Request.ReplicaName(context.Index),
            StartSource.Checkpoint, manifest.ConfigHash);
        record.CheckpointPath = context.Checkpoint.Path;
        context.Record = record;
        rollback.Push("remove the replica", () => context.Services.Engines.Abandon(record));

        var runDirectory = new RunDirectory(record.RunDirectory);
        File.Copy(CheckpointStore.LogSnapshotPath(context.Request.ReadPath), runDirectory.LogFile);
        // CRIU reopens the log only with the mode it had at dump; the snapshot in the checkpoint is 0600.
        File.SetUnixFileMode(runDirectory.LogFile, (UnixFileMode)manifest.LogMode);
        Fifo.Create(runDirectory.ResumeFifo);
        // The mount point's parent must exist on this host; it is the registry folder of the checkpointed engine.
        Directory.CreateDirectory(Path.GetDirectoryName(manifest.RunDirectory)!, Private);
        context.Timings.Add("run-directory", context.Services.Clock.GetElapsedTime(started));
        return Task.FromResult(StepOutcome.Continue);
    }
}
