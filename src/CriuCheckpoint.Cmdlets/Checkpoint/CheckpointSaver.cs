using System.Diagnostics;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Saves a serving engine into a store (DESIGN.md §4): preflight, prepare, criu dump into a staging directory,
/// manifest and log snapshot, atomic publish. Any failure after prepare resumes the engine and deletes the staging
/// directory, so the engine is never left blocked and nothing half-written becomes visible.
/// </summary>
internal sealed class CheckpointSaver
{
    private static readonly TimeSpan ResumeTimeout = TimeSpan.FromSeconds(60);
    private readonly EngineRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;

    public CheckpointSaver(EngineRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
    }

    public async Task<SaveResult> SaveAsync(EngineInfo engine, CheckpointStore store, SaveOptions options, CancellationToken cancellationToken)
    {
        var record = engine.Record;
        var activity = $"Saving engine {record.Name} to {store.Path}";
        var timings = new PhaseTimings();
        var total = Stopwatch.StartNew();
        var phase = Stopwatch.StartNew();
        var inspector = new EngineInspector(registry, procFs);

        observer.Progress(activity, "Preflight", 0);
        Preflight.EnsurePrivileges();
        var criu = await CriuTool.LocateAsync(options.CriuPath, cancellationToken).ConfigureAwait(false);
        if (record.StartedFrom == StartSource.Checkpoint)
        {
            throw new CriuCheckpointException(ErrorIds.RestoredEngineNotCheckpointable, FailureKind.NotImplemented,
                $"Engine {record.Name} was restored into its own PID namespace; saving a restored engine again is not supported. Save the engine it came from, or start one cold.",
                record.Name);
        }

        using var link = inspector.Connect(record);
        if (store.Find(record.ConfigHash) is { } existing && !options.Force)
        {
            observer.Warning($"{existing.Path} already holds a checkpoint of this configuration ({record.ConfigHash}); nothing was dumped and engine {record.Name} serves on. Use -Force to replace it.");
            return new SaveResult(existing, engine);
        }

        Directory.CreateDirectory(store.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Preflight.EnsureSpace(store.Path, engine.ProcessTree.Select(p => p.ProcessId), engine.GpuMemoryBytes);
        timings.Add("preflight", phase.Elapsed);
        observer.Verbose($"Save preflight: criu {criu.Version} at {criu.Path}, {phase.Elapsed.TotalSeconds:0.000} s.");

        var resumer = new EngineResumer(procFs);
        var runDirectory = new RunDirectory(record.RunDirectory);
        string? staging = null;
        var prepared = false;
        var cudaOptions = new CudaCheckpointOptions { MaxParallelism = options.CudaThrottleLimit };
        CudaCheckpointCoordinator? coordinator = null;
        CudaCheckpointResult? cuda = null;
        GpuManifest? gpuManifest = null;
        try
        {
            observer.Progress(activity, options.KeepCaches ? "Preparing the engine (drain, close sockets)" : "Preparing the engine (drain, release caches, close sockets)", 10);
            phase.Restart();
            prepared = true;
            await resumer.PrepareAsync(record, link, options.DrainTimeout, options.AbortInFlight, options.KeepCaches, cancellationToken).ConfigureAwait(false);
            timings.Add("prepare", phase.Elapsed);

            // Read while the tree is quiet and still alive: a dump without -LeaveRunning ends it.
            var tree = ProcessTree.Discover(record.RootProcessId, procFs);
            var mappedFiles = HostInspector.MappedFiles(tree.ProcessIds);
            staging = store.CreateStaging(record.ConfigHash);

            var inventory = GpuInventory.ForHost();
            if (inventory.AnyUsesCuda(tree.ProcessIds))
            {
                observer.Progress(activity, "CUDA: lock and checkpoint every GPU process", 20);
                var snapshot = inventory.Collect(tree.ProcessIds.ToArray());
                var api = CudaCheckpointApi.Open();
                coordinator = new CudaCheckpointCoordinator(api, observer);
                cuda = await coordinator.CheckpointAsync(snapshot.Processes, cudaOptions, cancellationToken).ConfigureAwait(false);
                AddPhases(timings, cuda.Timings);
                gpuManifest = new GpuManifest
                {
                    ProcessIds = cuda.ProcessIds.ToList(),
                    DeviceUuids = snapshot.Devices.OrderBy(d => d.Index).Select(d => d.Uuid).ToList(),
                    DeviceNames = snapshot.Devices.OrderBy(d => d.Index).Select(d => d.Name).ToList(),
                    DriverVersion = snapshot.Devices.FirstOrDefault()?.DriverVersion ?? string.Empty,
                    CudaVersion = api.DriverCudaVersion,
                    BytesCheckpointed = cuda.GpuBytes,
                };
                observer.Verbose($"CUDA checkpoint of PIDs {string.Join(", ", cuda.ProcessIds)}: {cuda.GpuBytes >> 20} MiB moved to host memory ({cuda.Timings}).");
            }

            observer.Progress(activity, $"criu dump of {tree.Processes.Count} processes", 30);
            phase.Restart();
            await new CriuRunner(criu).DumpAsync(record.RootProcessId, CheckpointStore.ImagesPath(staging), options.LeaveRunning, options.DumpTimeout, cancellationToken)
                .ConfigureAwait(false);
            timings.Add("criu-dump", phase.Elapsed);
            prepared = options.LeaveRunning;
            if (!options.LeaveRunning)
            {
                cuda = null; // CRIU ended the processes: there is no CUDA state left to hand back.
            }

            observer.Progress(activity, "Writing the manifest and the log snapshot", 80);
            phase.Restart();
            // The log's size as CRIU recorded it: read now, since nothing writes to it from the freeze on (the tree is
            // dead, or blocked on its FIFO until it is resumed). Read before the dump, a last line logged on the way
            // to the FIFO made every restore fail ("bad size").
            var logSize = new FileInfo(runDirectory.LogFile).Length;
            CopyPrefix(runDirectory.LogFile, CheckpointStore.LogSnapshotPath(staging), logSize);
            var manifest = BuildManifest(engine, criu, tree, logSize, mappedFiles, staging, timings, options.KeepCaches);
            manifest.Gpu = gpuManifest;
            manifest.GpuBytes = gpuManifest?.BytesCheckpointed ?? 0;
            RunDirectory.WriteJsonAtomic(CheckpointStore.ManifestPath(staging), manifest);
            timings.Add("manifest", phase.Elapsed);

            phase.Restart();
            var checkpoint = Publish(store, staging, record.ConfigHash, options.Force);
            staging = null;
            timings.Add("publish", phase.Elapsed);

            EngineInfo? serving = null;
            if (options.LeaveRunning)
            {
                observer.Progress(activity, "Resuming the engine", 90);
                if (cuda is not null)
                {
                    AddPhases(timings, (await coordinator!.RestoreAsync(cuda.ProcessIds, null, cudaOptions, CancellationToken.None).ConfigureAwait(false)).Timings);
                    cuda = null;
                }

                phase.Restart();
                await resumer.ResumeAsync(record, inspector.Liveness(record), ResumeTimeout, CancellationToken.None).ConfigureAwait(false);
                prepared = false;
                serving = await inspector.DescribeAsync(record, probe: true, TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
                timings.Add("resume", phase.Elapsed);
            }
            else
            {
                await new ProcessTerminator(procFs).WaitForExitAsync(tree.Processes, TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
                registry.Remove(record);
            }

            timings.Total = total.Elapsed;
            observer.Progress(activity, "Saved", 100);
            return new SaveResult(checkpoint with { Timings = timings }, serving);
        }
        finally
        {
            if (staging is not null)
            {
                CheckpointStore.DeleteStaging(staging);
            }

            if (cuda is not null && inspector.IsAlive(record))
            {
                // The dump failed after the driver checkpointed the GPU processes: hand their GPU state back first.
                try
                {
                    await coordinator!.RestoreAsync(cuda.ProcessIds, null, cudaOptions, CancellationToken.None).ConfigureAwait(false);
                }
                catch (CriuCheckpointException restoreFailure)
                {
                    observer.Warning($"Engine {record.Name}: the CUDA state of PIDs {string.Join(", ", cuda.ProcessIds)} could not be restored after the failed save: {restoreFailure.Message}");
                }
            }

            if (prepared && inspector.IsAlive(record) && !File.Exists(runDirectory.ReadyFile))
            {
                // The save failed or was cancelled after the engine blocked on its FIFO: it must serve again.
                observer.Verbose($"Resuming engine {record.Name} after the failed save.");
                try
                {
                    await resumer.ResumeAsync(record, inspector.Liveness(record), ResumeTimeout, CancellationToken.None).ConfigureAwait(false);
                }
                catch (CriuCheckpointException resumeFailure)
                {
                    observer.Warning($"Engine {record.Name} could not be resumed after the failed save: {resumeFailure.Message} Stop it with Stop-VllmEngine.");
                }
            }
        }
    }

    private EngineCheckpoint Publish(CheckpointStore store, string staging, string configHash, bool force)
    {
        var target = store.CheckpointPath(configHash);
        if (force && Directory.Exists(target))
        {
            // Out of the way in one rename, so readers see the old checkpoint or the new one, never a mix.
            var retired = store.NewStagingName(configHash);
            Directory.Move(target, retired);
            CheckpointStore.DeleteStaging(retired);
        }

        if (store.TryPublish(staging, configHash))
        {
            return CheckpointStore.Open(target);
        }

        observer.Warning($"Another save published {target} first; this dump was discarded and that checkpoint is returned.");
        CheckpointStore.DeleteStaging(staging);
        return CheckpointStore.Open(target);
    }

    private static CheckpointManifest BuildManifest(EngineInfo engine, CriuTool criu, ProcessTree tree, long logSize, List<MappedFile> mappedFiles, string staging, PhaseTimings timings, bool keepCaches)
    {
        var images = CheckpointStore.ImagesPath(staging);
        var imageFiles = Directory.EnumerateFiles(images)
            .Where(f => Path.GetFileName(f) != CriuRunner.DumpLog && !Path.GetFileName(f).StartsWith("stats-", StringComparison.Ordinal))
            .Select(f => new MappedFile { Path = Path.GetFileName(f), Size = new FileInfo(f).Length })
            .OrderBy(f => f.Path, StringComparer.Ordinal)
            .ToList();
        return new CheckpointManifest
        {
            ConfigHash = engine.ConfigHash,
            CreatedAt = DateTimeOffset.UtcNow,
            EngineId = engine.Id,
            EngineName = engine.Name,
            Spec = engine.Record.Spec,
            NativeConfigHash = engine.NativeConfigHash,
            RunDirectory = engine.RunDirectory,
            LogSizeAtDump = logSize,
            ProcessTree = tree.Processes.ToList(),
            Host = HostInspector.Collect(criu.Version.ToString(), engine.Record.Python),
            MappedFiles = mappedFiles,
            Images = imageFiles,
            ImageBytes = imageFiles.Sum(f => f.Size),
            GpuBytes = engine.GpuMemoryBytes,
            CachesKept = keepCaches,
            Timings = timings.Phases.ToDictionary(p => p.Key, p => p.Value.TotalSeconds),
        };
    }

    private static void AddPhases(PhaseTimings timings, PhaseTimings phases)
    {
        foreach (var (name, duration) in phases.Phases)
        {
            timings.Add(name, duration);
        }
    }

    /// <summary>Copies the first <paramref name="length"/> bytes: the log as it was when the engine was dumped.</summary>
    private static void CopyPrefix(string source, string destination, long length)
    {
        using var input = File.OpenRead(source);
        using var output = File.Create(destination);
        var buffer = new byte[81920];
        var remaining = length;
        while (remaining > 0)
        {
            var read = input.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
            if (read == 0)
            {
                throw new IOException($"{source} is shorter than the {length} bytes it had at dump.");
            }

            output.Write(buffer, 0, read);
            remaining -= read;
        }
    }
}
