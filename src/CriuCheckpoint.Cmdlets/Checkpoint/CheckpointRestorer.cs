using System.Diagnostics;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Restores engines from a checkpoint (DESIGN.md §5), each replica concurrently in its own PID and network namespace,
/// so a checkpoint restores while its original runs and N times at once without PID collisions, GPU or not.
/// A replica that fails is killed by PID and its run directory removed; the others are unaffected.
/// </summary>
internal sealed class CheckpointRestorer
{
    private readonly EngineRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;

    public CheckpointRestorer(EngineRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
    }

    /// <summary>Restores the replicas; each entry is an engine or the failure of that replica.</summary>
    public async Task<IReadOnlyList<ReplicaOutcome>> RestoreAsync(EngineCheckpoint checkpoint, RestoreOptions options, CancellationToken cancellationToken)
    {
        var validation = Stopwatch.StartNew();
        if (options.HostPidNamespace && options.Count != 1)
        {
            throw new CriuCheckpointException(ErrorIds.ConflictingParameters, FailureKind.InvalidArgument,
                $"Only one replica can be restored into the host's PID namespace (its PIDs are the recorded ones), not {options.Count}.", options.Count);
        }

        Preflight.EnsurePrivileges();
        var criu = await CriuTool.LocateAsync(options.CriuPath, cancellationToken).ConfigureAwait(false);
        Validate(checkpoint, criu, options.Force);
        var inspector = new EngineInspector(registry, procFs);
        foreach (var index in Enumerable.Range(1, options.Count))
        {
            inspector.EnsureNameFree(ReplicaName(options, index));
        }

        var validated = validation.Elapsed;
        observer.Verbose($"Checkpoint {checkpoint.Path} validated in {validated.TotalSeconds:0.000} s (criu {criu.Version}).");

        var replicas = Enumerable.Range(1, options.Count).Select(i => RestoreOneAsync(checkpoint, criu, ReplicaName(options, i), i, options, validated, cancellationToken));
        return await Task.WhenAll(replicas).ConfigureAwait(false);
    }

    /// <summary>Everything that can be checked before criu runs, failing with the property and both values.</summary>
    public void Validate(EngineCheckpoint checkpoint, CriuTool criu, bool force)
    {
        CheckpointStore.EnsureSecure(checkpoint.Path);
        var manifest = checkpoint.Manifest;
        var images = CheckpointStore.ImagesPath(checkpoint.Path);
        foreach (var image in manifest.Images)
        {
            var path = Path.Combine(images, image.Path);
            var size = File.Exists(path) ? new FileInfo(path).Length : -1;
            if (size != image.Size)
            {
                throw new CriuCheckpointException(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData,
                    $"Checkpoint {checkpoint.Path} is damaged: image {image.Path} is {(size < 0 ? "missing" : $"{size} bytes")}, the manifest says {image.Size} bytes.",
                    path);
            }
        }

        var log = CheckpointStore.LogSnapshotPath(checkpoint.Path);
        if (!File.Exists(log) || new FileInfo(log).Length != manifest.LogSizeAtDump)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData,
                $"Checkpoint {checkpoint.Path} is damaged: its log snapshot must be {manifest.LogSizeAtDump} bytes (CRIU restores open files only at their dumped size).", log);
        }

        // The driver is asked only for checkpoints that hold GPU state: CPU hosts never load it.
        var gpus = manifest.Gpu is null ? null : GpuInventory.ForHost().Collect(Array.Empty<int>());
        var issues = Compatibility.Check(manifest, HostInspector.Collect(criu.Version.ToString(), manifest.Host.Python), gpus);
        if (issues.Count == 0)
        {
            return;
        }

        if (!force)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointIncompatible, FailureKind.InvalidOperation,
                $"Checkpoint {checkpoint.Path} does not fit this host: {string.Join("; ", issues)}. Use -Force to restore anyway.", checkpoint.Path);
        }

        foreach (var issue in issues)
        {
            observer.Warning($"Restoring despite a difference (-Force): {issue}.");
        }
    }

    /// <summary>
    /// Hands the GPU state back to a replica's CUDA processes once criu has restored them: their PIDs inside the namespace
    /// are the ones the image recorded; the driver wants their host PIDs.
    /// </summary>
    private async Task<PhaseTimings> RestoreCudaAsync(EngineRecord record, GpuManifest gpu, int throttleLimit, CancellationToken cancellationToken)
    {
        var tree = ProcessTree.Discover(record.RootProcessId, procFs).Processes;
        var hostPids = gpu.ProcessIds
            .Select(nsPid => tree.FirstOrDefault(p => p.NamespaceProcessId == nsPid && p.ProcessId != record.RootProcessId)?.ProcessId
                ?? throw new CriuCheckpointException(ErrorIds.CudaRestoreFailed, FailureKind.InvalidOperation,
                    $"Replica {record.Name}: the restored tree has no process {nsPid} of the checkpoint's CUDA processes.", record.Name))
            .ToArray();
        var hostUuids = GpuInventory.ForHost().Collect(Array.Empty<int>()).Devices.OrderBy(d => d.Index).Select(d => d.Uuid).ToList();
        var pairs = GpuMap.Pairs(gpu.DeviceUuids, hostUuids);
        var result = await new CudaCheckpointCoordinator(CudaCheckpointApi.Open(), observer)
            .RestoreAsync(hostPids, pairs, new CudaCheckpointOptions { MaxParallelism = throttleLimit }, cancellationToken).ConfigureAwait(false);
        observer.Verbose($"Replica {record.Name}: CUDA state restored to host PIDs {string.Join(", ", hostPids)} ({result.Timings}).");
        return result.Timings;
    }

    /// <summary>
    /// A restore into the host's PID namespace needs the recorded PIDs free. An original that has just exited holds them
    /// as a zombie until its parent reaps it (an init may take a second), so that is waited for; a live process is not.
    /// </summary>
    private async Task WaitForRecordedPidsAsync(EngineCheckpoint checkpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var taken = checkpoint.Manifest.ProcessTree
                .Select(p => (Recorded: p, Now: procFs.ReadStat(p.NamespaceProcessId)))
                .Where(p => p.Now is not null)
                .ToList();
            if (taken.Count == 0)
            {
                return;
            }

            var live = taken.Where(p => p.Now!.State != 'Z').ToList();
            if (live.Count > 0 || watch.Elapsed > timeout)
            {
                var names = string.Join(", ", (live.Count > 0 ? live : taken).Select(p => $"{p.Recorded.NamespaceProcessId} ({p.Now!.Name}, state {p.Now.State})"));
                throw new CriuCheckpointException(ErrorIds.CriuRestoreFailed, FailureKind.ResourceExists,
                    $"Cannot restore {checkpoint.Path} into the host's PID namespace: its recorded PIDs are taken on this host: {names}. Stop the engine it was saved from first, or restore without -HostPidNamespace.",
                    checkpoint.Path);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken).ConfigureAwait(false);
        }
    }

    private static string? ReplicaName(RestoreOptions options, int index) =>
        options.Name is null ? null : options.Count == 1 ? options.Name : $"{options.Name}-{index}";

    private async Task<ReplicaOutcome> RestoreOneAsync(EngineCheckpoint checkpoint, CriuTool criu, string? name, int index, RestoreOptions options, TimeSpan validated, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        var manifest = checkpoint.Manifest;
        var activity = $"Restoring replica {index} of {options.Count} from {checkpoint.Path}";
        var timings = new PhaseTimings();
        timings.Add("validate", validated);
        var phase = Stopwatch.StartNew();
        var record = registry.Create(manifest.Spec with { Python = manifest.Host.Python }, name, StartSource.Checkpoint, manifest.ConfigHash);
        record.CheckpointPath = checkpoint.Path;
        var runDirectory = new RunDirectory(record.RunDirectory);
        var inspector = new EngineInspector(registry, procFs);
        var succeeded = false;
        try
        {
            observer.Progress(activity, "Preparing the run directory", 5);
            File.Copy(CheckpointStore.LogSnapshotPath(checkpoint.Path), runDirectory.LogFile);
            Fifo.Create(runDirectory.ResumeFifo);
            // The mount point's parent must exist on this host; it is the registry folder of the checkpointed engine.
            Directory.CreateDirectory(Path.GetDirectoryName(manifest.RunDirectory)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            timings.Add("run-directory", phase.Elapsed);

            if (options.HostPidNamespace)
            {
                await WaitForRecordedPidsAsync(checkpoint, options.Timeout, cancellationToken).ConfigureAwait(false);
            }

            observer.Progress(activity, options.HostPidNamespace ? "criu restore in the host's PID namespace" : "criu restore in a fresh PID namespace", 20);
            phase.Restart();
            var command = RestoreCommand.Build(criu.Path, CheckpointStore.ImagesPath(checkpoint.Path), manifest.RunDirectory, record.RunDirectory, manifest.Host.Python, options.HostPidNamespace);
            record.RootProcessId = await DetachedProcess.StartAsync(command, runDirectory.PidFile, Path.Combine(record.RunDirectory, "restore.out"),
                record.RunDirectory, new Dictionary<string, string?>(), cancellationToken).ConfigureAwait(false);
            record.RootStartTime = procFs.ReadStat(record.RootProcessId)?.StartTime ?? 0;
            registry.Save(record);

            var resumer = new EngineResumer(procFs);
            var restoreLog = Path.Combine(record.RunDirectory, RestoreCommand.RestoreLog);
            try
            {
                // The FIFO opens for writing only once the restored engine reads it: criu has finished by then.
                var message = await WaitForRestoredEngineAsync(record, resumer, manifest.Gpu, options, timings, phase, cancellationToken).ConfigureAwait(false);
                observer.Verbose($"Replica {record.Name}: {message}");
            }
            catch (CriuCheckpointException e) when (e.ErrorId == ErrorIds.ResumeFailed)
            {
                throw new CriuRunner(criu).Failure(ErrorIds.CriuRestoreFailed, e.Kind, command, null,
                    $"Restoring replica {index} of {checkpoint.Path} failed: {e.Message}", restoreLog);
            }

            phase.Restart();
            observer.Progress(activity, "Saying hello over the link", 90);
            var info = await inspector.DescribeAsync(record, probe: true, TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
            timings.Add("hello", phase.Elapsed);
            timings.Total = total.Elapsed;
            if (info.State != EngineState.Ready)
            {
                throw new CriuCheckpointException(ErrorIds.CriuRestoreFailed, FailureKind.InvalidOperation,
                    $"Replica {record.Name} resumed but does not answer on {info.Endpoint}.", record.Name, details: runDirectory.LogTail());
            }

            observer.Progress(activity, "Ready", 100);
            succeeded = true;
            return new ReplicaOutcome(info with { StartupTime = timings }, null);
        }
        catch (CriuCheckpointException e)
        {
            return new ReplicaOutcome(null, e);
        }
        finally
        {
            if (!succeeded)
            {
                new EngineLauncher(registry, observer, procFs).Abandon(record);
            }
        }
    }

    private async Task<string> WaitForRestoredEngineAsync(EngineRecord record, EngineResumer resumer, GpuManifest? gpu, RestoreOptions options, PhaseTimings timings, Stopwatch phase, CancellationToken cancellationToken)
    {
        var inspector = new EngineInspector(registry, procFs);
        var ready = await resumer.ResumeAsync(record, inspector.Liveness(record), options.Timeout, cancellationToken,
            beforeResume: async () =>
            {
                timings.Add("criu-restore", phase.Elapsed);
                phase.Restart();
                if (gpu is not null)
                {
                    foreach (var (name, duration) in (await RestoreCudaAsync(record, gpu, options.CudaThrottleLimit, cancellationToken).ConfigureAwait(false)).Phases)
                    {
                        timings.Add(name, duration);
                    }

                    phase.Restart();
                }
            }).ConfigureAwait(false);
        timings.Add("resume", phase.Elapsed);
        return $"restored and serving at {ready.Endpoint}.";
    }
}

/// <summary>One replica's result: the restored engine, or why it failed.</summary>
internal sealed record ReplicaOutcome(EngineInfo? Engine, CriuCheckpointException? Failure);
