using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// criu restore of the tree inside the replica's namespaces (<see cref="RestoreNamespace"/>), detached, as the
/// namespace's init; done when the restored engine opens its resume FIFO, which it reads only once criu has finished.
/// The FIFO stays open for RestoreCuda and Resume; undone by closing it (the run directory's compensation then ends
/// the namespace). While criu runs, the replica's progress bar shows the bytes its processes have read against the
/// size of the images.
/// </summary>
internal sealed class RestoreProcessesStep : IStep<RestoreContext>
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);

    public string Name => "RestoreProcesses";

    public int PercentAtStart => 20;

    public string Describe(RestoreContext context) =>
        context.Options.HostPidNamespace ? "criu restore in the host's PID namespace" : "criu restore in a fresh PID namespace";

    public async Task<StepOutcome> RunAsync(RestoreContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        if (context.Options.HostPidNamespace)
        {
            await WaitForRecordedPidsAsync(context, cancellationToken).ConfigureAwait(false);
        }

        var started = context.Services.Clock.GetTimestamp();
        var record = context.Record;
        var session = await StartAsync(context, cancellationToken).ConfigureAwait(false);
        context.Session = session;
        record.RootProcessId = session.ProcessId;
        record.RootStartTime = context.Services.ProcFs.ReadStat(session.ProcessId)?.StartTime ?? 0;
        context.Services.Registry.Save(record);
        try
        {
            var meter = TransferMeter.Start(() => BytesRead(context, session.ProcessId), context.Manifest.ImageBytes, sample => Report(context, sample), context.Services.Clock);
            await using (meter.ConfigureAwait(false))
            {
                context.Fifo = await context.Services.Engines.OpenResumeFifoAsync(record, context.Options.Timeout, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (CriuCheckpointException e) when (e.ErrorId == ErrorIds.ResumeFailed)
        {
            throw CriuRunner.Failure(ErrorIds.CriuRestoreFailed, e.Kind, session.CommandLine, null,
                $"criu restore of {context.Describe} of {context.Checkpoint.Path} failed: {e.Message}", session.LogPath);
        }

        var fifo = context.Fifo;
        rollback.Push("close the resume FIFO", fifo.Dispose);
        RecordRestoredTree(context);
        context.Timings.Add("criu-restore", context.Services.Clock.GetElapsedTime(started));
        return StepOutcome.Continue;
    }

    /// <summary>
    /// What the replica's session has read so far: criu reads the images, and each process it forks reads its own memory
    /// pages, so the sum over the session's tree is the images read (and a little besides: the namespace script, /proc).
    /// </summary>
    private static long BytesRead(RestoreContext context, int sessionLeader) =>
        context.Services.Engines.Tree(sessionLeader).Processes.Sum(p => context.Services.ProcFs.ReadBytesRead(p.ProcessId));

    private void Report(RestoreContext context, TransferSample sample) =>
        context.Observer.Progress(new ProgressReport(context.Activity, sample.Describe("criu restore", "read"), sample.PercentBetween(PercentAtStart, RestoreCudaStep.Start))
        {
            Remaining = sample.Remaining,
        });

    /// <summary>
    /// The restored frontend (by the PID it was dumped with, now its PID inside the namespace) and its parent, criu,
    /// the namespace's init: Get-VllmEngine follows the first, Stop-VllmEngine ends the namespace through the second.
    /// </summary>
    private static void RecordRestoredTree(RestoreContext context)
    {
        var record = context.Record;
        var tree = context.Services.Engines.Tree(record.RootProcessId).Processes;
        var dumpedRoot = context.Manifest.ProcessTree.FirstOrDefault()?.ProcessId;
        if (tree.FirstOrDefault(p => p.NamespaceProcessId == dumpedRoot && p.ProcessId != record.RootProcessId) is not { } engine)
        {
            return;
        }

        var init = tree.FirstOrDefault(p => p.ProcessId == engine.ParentProcessId);
        record.EngineProcessId = engine.ProcessId;
        record.EngineStartTime = engine.StartTime;
        record.NamespaceInitProcessId = init?.ProcessId ?? 0;
        record.NamespaceInitStartTime = init?.StartTime ?? 0;
        context.Services.Registry.Save(record);
    }

    private static Task<CriuSession> StartAsync(RestoreContext context, CancellationToken cancellationToken)
    {
        var record = context.Record;
        var place = new RestoreNamespace
        {
            RecordedRunDirectory = context.Manifest.RunDirectory,
            ReplicaDirectory = record.RunDirectory,
            Python = context.Request.Python,
            HostPidNamespace = context.Options.HostPidNamespace,
            Images = context.Request.Trusted?.Images,
        };
        var options = CriuOptions.ForRestore(RestoreNamespace.ImagesArgument, record.RunDirectory, context.Request.Criu!.Version, context.Options.DirectImageReads);
        var runDirectory = new RunDirectory(record.RunDirectory);
        return context.Services.Criu.StartRestoreAsync(context.Request.Criu!, options, place, runDirectory.PidFile,
            Path.Combine(record.RunDirectory, "restore.out"), cancellationToken);
    }

    /// <summary>
    /// A restore into the host's PID namespace needs the recorded PIDs free. An original that has just exited holds them
    /// as a zombie until its parent reaps it (an init may take a second), so that is waited for; a live process is not.
    /// </summary>
    private static async Task WaitForRecordedPidsAsync(RestoreContext context, CancellationToken cancellationToken)
    {
        var procFs = context.Services.ProcFs;
        var started = context.Services.Clock.GetTimestamp();
        while (true)
        {
            var taken = context.Manifest.ProcessTree
                .Select(p => (Recorded: p, Now: procFs.ReadStat(p.NamespaceProcessId)))
                .Where(p => p.Now is not null)
                .ToList();
            if (taken.Count == 0)
            {
                return;
            }

            var live = taken.Where(p => p.Now!.State != 'Z').ToList();
            if (live.Count > 0 || context.Services.Clock.GetElapsedTime(started) > context.Options.Timeout)
            {
                var names = string.Join(", ", (live.Count > 0 ? live : taken).Select(p => $"{p.Recorded.NamespaceProcessId} ({p.Now!.Name}, state {p.Now.State})"));
                throw new CriuCheckpointException(ErrorIds.CriuRestoreFailed, FailureKind.ResourceExists,
                    $"Cannot restore {context.Checkpoint.Path} into the host's PID namespace: its recorded PIDs are taken on this host: {names}. Stop the engine it was saved from first, or restore without -HostPidNamespace.",
                    context.Checkpoint.Path);
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }
}
