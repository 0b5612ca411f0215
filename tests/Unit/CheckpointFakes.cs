using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Tests;

/// <summary>
/// One fake world for save and restore: a registry and a store in a temporary directory, an engine whose state moves
/// as the real one's does (serving → prepared → dumped or resumed), criu that writes image files, and the fake driver.
/// Every call is recorded in <see cref="Calls"/>, in order; any call can be made to fail through <see cref="Fail"/>.
/// </summary>
internal sealed class CheckpointWorld : IDisposable
{
    public const int RootPid = 4100;
    public const int CorePid = 4101;

    public CheckpointWorld(bool usesCuda = false, EngineSpec? spec = null)
    {
        Root = Directory.CreateTempSubdirectory("criu-world-").FullName;
        Registry = new EngineRegistry(Path.Combine(Root, "registry"));
        Store = new CheckpointStore(Path.Combine(Root, "store"));
        Cuda = usesCuda ? new FakeCudaCheckpointApi(CorePid) : new FakeCudaCheckpointApi();
        Engines = new FakeEngineControl(this);
        Criu = new FakeCriuRunner(this);
        Gpus = new FakeGpuInventory(usesCuda);
        Host = new FakeHostSystem(this);
        WeightPrefetcher = new FakeWeightPrefetcher(this);
        Services = new CheckpointServices
        {
            Registry = Registry,
            ProcFs = new ProcFs(Path.Combine(Root, "proc")),
            Criu = Criu,
            OpenCudaApi = () => Cuda,
            Gpus = Gpus,
            Host = Host,
            Engines = Engines,
            Python = new PythonLocator(new AcceptingPythonProbe(), name => name == "PATH" ? "/usr/bin" : null),
            WeightPrefetcher = WeightPrefetcher,
        };
        Engine = StartEngine(spec ?? new EngineSpec { Python = "/usr/bin/python3" });
    }

    public string Root { get; }

    public EngineRegistry Registry { get; }

    public CheckpointStore Store { get; }

    public FakeCudaCheckpointApi Cuda { get; }

    public FakeEngineControl Engines { get; }

    public FakeCriuRunner Criu { get; }

    public FakeGpuInventory Gpus { get; }

    public FakeHostSystem Host { get; }

    public FakeWeightPrefetcher WeightPrefetcher { get; }

    public CheckpointServices Services { get; }

    public EngineInfo Engine { get; }

    public List<string> Calls { get; } = new();

    public RecordingObserver Observer { get; } = new();

    /// <summary>The exception a named call throws instead of succeeding ("prepare", "dump", "start-restore", ...).</summary>
    public Func<string, Exception?> Fail { get; set; } = _ => null;

    /// <summary>The world's engine saved into its store with the default options; the calls the save made are forgotten.</summary>
    public async Task<EngineCheckpoint> SaveAsync()
    {
        var saved = await new CheckpointSaver(Services, Observer).SaveAsync(Engine, Store, new SaveOptions(), CancellationToken.None);
        Calls.Clear();
        return saved.Checkpoint;
    }

    public Task<IReadOnlyList<ReplicaOutcome>> RestoreAsync(EngineCheckpoint checkpoint, RestoreOptions options) =>
        new CheckpointRestorer(Services, Observer).RestoreAsync(checkpoint, options, CancellationToken.None);

    public void Record(string call)
    {
        lock (Calls)
        {
            Calls.Add(call);
        }

        if (Fail(call) is { } failure)
        {
            throw failure;
        }
    }

    public static CriuCheckpointException Failure(string errorId) => new(errorId, FailureKind.InvalidOperation, $"injected {errorId}");

    public IReadOnlyList<string> StagingDirectories() =>
        Directory.Exists(Store.Path) ? Directory.GetDirectories(Store.Path, ".staging-*") : Array.Empty<string>();

    public void Dispose() => Directory.Delete(Root, recursive: true);

    private EngineInfo StartEngine(EngineSpec spec)
    {
        var record = Registry.Create(spec, "engine", StartSource.Cold);
        record.RootProcessId = RootPid;
        Registry.Save(record);
        File.WriteAllText(new RunDirectory(record.RunDirectory).LogFile, "engine started\nengine ready\n");
        Engines.States[record.Id] = FakeEngineState.Serving;
        return new EngineInfo
        {
            Id = record.Id,
            Name = record.Name,
            State = EngineState.Ready,
            ProcessId = RootPid,
            ProcessTree = FakeEngineControl.TreeOf(RootPid).Processes,
            ConfigHash = record.ConfigHash,
            RunDirectory = record.RunDirectory,
            Record = record,
        };
    }
}

internal enum FakeEngineState
{
    Serving,
    Prepared,
    Dead,
}

internal sealed class FakeEngineControl : IEngineControl
{
    private readonly CheckpointWorld world;
    private int nextPid = 5000;

    public FakeEngineControl(CheckpointWorld world) => this.world = world;

    public Dictionary<string, FakeEngineState> States { get; } = new();

    /// <summary>How Verify's hello finds a replica.</summary>
    public EngineState ReplicaState { get; set; } = EngineState.Ready;

    /// <summary>When set, opening a replica's FIFO waits for cancellation: criu hangs.</summary>
    public bool FifoNeverOpens { get; set; }

    /// <summary>How long criu takes to restore a replica before its engine opens the FIFO.</summary>
    public TimeSpan RestoreTakes { get; set; }

    /// <summary>What prepare_checkpoint answers: the canary and its time, the inventory.</summary>
    public PrepareOutcome Prepared { get; set; } = new(
        new CheckpointCanary { Prompt = "The capital of France is", TokenIds = [65, 66], Logprobs = [-0.5, -1.25] }, TimeSpan.FromMilliseconds(30),
        new EngineRuntime { Versions = new() { ["python"] = "3.11.2" }, Environment = EnvironmentIdentity.OfProcess() });

    /// <summary>The canary check each resume message carried, in order.</summary>
    public List<ResumeTerms> ResumeTermsGiven { get; } = new();

    /// <summary>When set, a restored replica answers another canary: it writes failed.json canary_mismatch and exits.</summary>
    public bool ReplicaCanaryDiffers { get; set; }

    /// <summary>A frontend and its core; inside a replica's namespace they have the PIDs they were dumped with.</summary>
    public static ProcessTree TreeOf(int root) => new(new[]
    {
        new ProcessNode(root, 1, CheckpointWorld.RootPid, "python3", "python3 -m engine_host", 1),
        new ProcessNode(root + 1, root, CheckpointWorld.CorePid, "python3", "core-0", 2),
    });

    public bool IsAlive(EngineRecord record) => State(record) != FakeEngineState.Dead;

    public bool IsPrepared(EngineRecord record) => State(record) == FakeEngineState.Prepared;

    public void EnsureServing(EngineRecord record)
    {
        world.Record("ensure-serving");
        if (State(record) != FakeEngineState.Serving)
        {
            throw new CriuCheckpointException(ErrorIds.EngineNotReady, FailureKind.ResourceUnavailable, "not serving");
        }
    }

    public void EnsureNameFree(string? name) => world.Record($"name-free {name}");

    public Task<PrepareOutcome> PrepareAsync(EngineRecord record, PrepareRequest request, CancellationToken cancellationToken)
    {
        // The engine blocks on its FIFO before it acknowledges: a failed prepare can leave it prepared.
        States[record.Id] = FakeEngineState.Prepared;
        world.Record(request.Canary ? "prepare" : "prepare without canary");
        return Task.FromResult(request.Canary ? Prepared : Prepared with { Canary = null, CanaryTime = TimeSpan.Zero });
    }

    public async Task<IResumeFifo> OpenResumeFifoAsync(EngineRecord record, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (FifoNeverOpens && record.StartedFrom == StartSource.Checkpoint)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        if (record.StartedFrom == StartSource.Checkpoint)
        {
            await Task.Delay(RestoreTakes, cancellationToken);
        }

        world.Record("open-fifo");
        return new FakeFifo(world);
    }

    public Task<ReadyInfo> ResumeThroughAsync(EngineRecord record, IResumeFifo fifo, ResumeTerms terms, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using (fifo)
        {
            world.Record("resume");
        }

        ResumeTermsGiven.Add(terms);
        if (ReplicaCanaryDiffers && record.StartedFrom == StartSource.Checkpoint && !terms.SkipCanary)
        {
            States[record.Id] = FakeEngineState.Dead;
            throw EngineResumer.ResumeFailure(record, new FailedInfo { Code = "canary_mismatch", Message = "token ids differ: expected [65, 66], got [65, 67]" }, "log tail");
        }

        States[record.Id] = FakeEngineState.Serving;
        var phases = terms.SkipCanary ? new Dictionary<string, double> { ["resume_bind"] = 0.001 } : new Dictionary<string, double> { ["resume_canary"] = 0.002, ["resume_bind"] = 0.001 };
        return Task.FromResult(new ReadyInfo { Endpoint = "tcp://127.0.0.1:5555", Phases = phases });
    }

    public Task<EngineInfo> DescribeAsync(EngineRecord record, TimeSpan timeout, CancellationToken cancellationToken)
    {
        world.Record("hello");
        return Task.FromResult(new EngineInfo
        {
            Id = record.Id,
            Name = record.Name,
            State = record.StartedFrom == StartSource.Checkpoint ? ReplicaState : EngineState.Ready,
            Endpoint = "tcp://127.0.0.1:5555",
            RunDirectory = record.RunDirectory,
            Record = record,
        });
    }

    public ProcessTree Tree(int rootProcessId) => TreeOf(rootProcessId);

    public Task WaitForExitAsync(ProcessTree tree, TimeSpan timeout, CancellationToken cancellationToken)
    {
        world.Record("wait-exit");
        return Task.CompletedTask;
    }

    public void Abandon(EngineRecord record)
    {
        world.Record($"abandon {record.Name}");
        States[record.Id] = FakeEngineState.Dead;
        world.Registry.Remove(record);
    }

    public void Forget(EngineRecord record)
    {
        world.Record("forget");
        world.Registry.Remove(record);
    }

    /// <summary>A restored replica starts blocked on its FIFO, as criu leaves it.</summary>
    public int Restored(EngineRecord record)
    {
        States[record.Id] = FakeEngineState.Prepared;
        return Interlocked.Increment(ref nextPid);
    }

    public void Dumped(EngineRecord record, bool leaveRunning)
    {
        if (!leaveRunning)
        {
            States[record.Id] = FakeEngineState.Dead;
        }
    }

    private FakeEngineState State(EngineRecord record) => States.GetValueOrDefault(record.Id, FakeEngineState.Dead);
}

internal sealed class FakeFifo : IResumeFifo
{
    private readonly CheckpointWorld world;
    private bool closed;

    public FakeFifo(CheckpointWorld world) => this.world = world;

    public void Write(string message)
    {
    }

    public void Dispose()
    {
        if (!closed)
        {
            closed = true;
            world.Record("close-fifo");
        }
    }
}

internal sealed class FakeCriuRunner : ICriuRunner
{
    private readonly CheckpointWorld world;

    public FakeCriuRunner(CheckpointWorld world) => this.world = world;

    public List<IReadOnlyList<string>> CommandLines { get; } = new();

    /// <summary>Told the PID of each replica's root when its restore starts.</summary>
    public Action<int> OnStart { get; set; } = _ => { };

    /// <summary>Runs after a successful dump: to change the world the next step finds.</summary>
    public Action AfterDump { get; set; } = () => { };

    /// <summary>How long the dump takes writing its pages, a piece at a time, before it writes the rest of the images.</summary>
    public TimeSpan DumpTakes { get; set; }

    /// <summary>The version the located criu reports.</summary>
    public Version Version { get; set; } = new(4, 2, 1);

    public Task<CriuTool> LocateAsync(string? requested, CancellationToken cancellationToken)
    {
        world.Record("locate-criu");
        return Task.FromResult(new CriuTool("/opt/criu/bin/criu", Version));
    }

    public async Task DumpAsync(CriuTool criu, CriuOptions options, TimeSpan timeout, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        CommandLines.Add(options.ToArguments());
        world.Record("dump");
        await WritePagesAsync(Path.Combine(options.ImagesDirectory, "pages-1.img"), cancellationToken);
        File.WriteAllBytes(Path.Combine(options.ImagesDirectory, "core-4100.img"), new byte[512]);
        File.WriteAllText(options.LogPath, "(00.000001) Dumping finished successfully\n");
        world.Engines.Dumped(world.Engine.Record, options.LeaveRunning);
        AfterDump();
    }

    /// <summary>4 KiB of pages, written in ten pieces over <see cref="DumpTakes"/>.</summary>
    private async Task WritePagesAsync(string path, CancellationToken cancellationToken)
    {
        await using var pages = File.Create(path);
        for (var piece = 0; piece < 10; piece++)
        {
            await pages.WriteAsync(new byte[4096 / 10 + (piece == 9 ? 4096 % 10 : 0)], cancellationToken);
            await pages.FlushAsync(cancellationToken);
            await Task.Delay(DumpTakes / 10, cancellationToken);
        }
    }

    public Task<CriuSession> StartRestoreAsync(CriuTool criu, CriuOptions options, RestoreNamespace place, string pidFile, string outputFile, CancellationToken cancellationToken)
    {
        var command = place.Wrap(new[] { criu.Path }.Concat(options.ToArguments()).ToArray());
        lock (CommandLines)
        {
            CommandLines.Add(command);
        }

        world.Record("start-restore");
        File.WriteAllText(options.LogPath, "(00.000001) Error (criu/cr-restore.c:1): injected restore failure\n");
        var record = world.Registry.List().Single(r => r.RunDirectory == options.WorkDirectory);
        var pid = world.Engines.Restored(record);
        if (world.Gpus.AnyUsesCuda(new[] { CheckpointWorld.CorePid }))
        {
            // What criu restores of a CUDA process: one the driver holds checkpointed.
            world.Cuda.SetState(pid + 1, CudaProcessState.Checkpointed);
        }

        OnStart(pid);
        return Task.FromResult(new CriuSession(pid, command, options.LogPath));
    }
}

internal sealed class FakeGpuInventory : IGpuInventory
{
    private readonly bool usesCuda;

    public FakeGpuInventory(bool usesCuda) => this.usesCuda = usesCuda;

    public static GpuDevice Device { get; } = new()
    {
        Index = 0, Uuid = "GPU-aaaa", Name = "NVIDIA H200", DriverVersion = "580.159.04", MinorNumber = 0, MemoryTotalBytes = 140L << 30,
    };

    /// <summary>What other processes hold on the GPU.</summary>
    public long UsedByOthers { get; set; }

    public bool AnyUsesCuda(IEnumerable<int> processIds) => usesCuda && processIds.Contains(CheckpointWorld.CorePid);

    public GpuSnapshot Collect(IReadOnlyCollection<int>? among = null) => new(
        new[] { Device with { MemoryUsedBytes = UsedByOthers } },
        usesCuda && (among is null || among.Contains(CheckpointWorld.CorePid))
            ? new[] { new GpuProcess { ProcessId = CheckpointWorld.CorePid, GpuIndex = 0, GpuUuid = Device.Uuid, GpuMemoryBytes = 1 << 30 } }
            : Array.Empty<GpuProcess>());
}

/// <summary>
/// A weight prefetch of a 3 MiB model in half a second that records "prefetch-start" (which <see cref="CheckpointWorld.Fail"/>
/// can fail) and, when its reader has ended, "prefetch-end".
/// </summary>
internal sealed class FakeWeightPrefetcher : IWeightPrefetcher
{
    public const long ModelBytes = 3L << 20;
    private readonly CheckpointWorld world;

    public FakeWeightPrefetcher(CheckpointWorld world) => this.world = world;

    /// <summary>When set, it reads 1 MiB and then waits to be stopped, and takes 50 ms more to end: a restore that did not wait for it returns first.</summary>
    public bool ReadsUntilStopped { get; set; }

    public List<string> Directories { get; } = new();

    /// <summary>Set as its reader ends.</summary>
    public bool Finished { get; private set; }

    public async Task<WeightPrefetchResult> ReadAsync(string directory, CancellationToken cancellationToken)
    {
        Directories.Add(directory);
        world.Record("prefetch-start");
        try
        {
            if (!ReadsUntilStopped)
            {
                return new WeightPrefetchResult(directory, 2, ModelBytes, 0, ModelBytes, TimeSpan.FromSeconds(0.5), []);
            }

            await Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
            await Task.Delay(50, CancellationToken.None);
            return new WeightPrefetchResult(directory, 2, 1L << 20, 0, ModelBytes, TimeSpan.FromSeconds(0.5), []);
        }
        finally
        {
            Finished = true;
            lock (world.Calls)
            {
                world.Calls.Add("prefetch-end");
            }
        }
    }
}

internal sealed class FakeHostSystem : IHostSystem
{
    private readonly CheckpointWorld world;

    public FakeHostSystem(CheckpointWorld world) => this.world = world;

    public long AvailableBytesNow { get; set; } = 1L << 40;

    public void EnsurePrivileges() => world.Record("privileges");

    public long AvailableBytes(string directory) => AvailableBytesNow;

    public long DumpedBytes(IEnumerable<int> processIds) => processIds.Count() * (100L << 20);

    public List<MappedFile> MappedFiles(IEnumerable<int> processIds) => new();

    /// <summary>What the caller's Python reports of itself and its packages.</summary>
    public Dictionary<string, string> Versions { get; set; } = new() { ["python"] = "3.11.2" };

    public Task<IReadOnlyDictionary<string, string>> RuntimeVersionsAsync(string python, IOperationObserver observer, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<string, string>>(Versions);

    public HostFacts Facts(string criuVersion, string python) => new()
    {
        Hostname = "host",
        Architecture = "X64",
        Kernel = "6.18.0",
        CpuModel = "cpu",
        CriuVersion = criuVersion,
        Python = python,
        ModuleVersion = "0.1.0",
    };
}

internal sealed class RecordingObserver : IOperationObserver
{
    public List<string> Warnings { get; } = new();

    public List<string> Steps { get; } = new();

    public List<ProgressReport> Reports { get; } = new();

    public List<string> DebugLines { get; } = new();

    public List<string> VerboseMessages { get; } = new();

    public void Progress(ProgressReport report)
    {
        lock (Steps)
        {
            Steps.Add(report.Status);
            Reports.Add(report);
        }
    }

    public void Verbose(string message)
    {
        lock (VerboseMessages)
        {
            VerboseMessages.Add(message);
        }
    }

    public void Warning(string message)
    {
        lock (Warnings)
        {
            Warnings.Add(message);
        }
    }

    public void Debug(string message)
    {
        lock (DebugLines)
        {
            DebugLines.Add(message);
        }
    }
}

/// <summary>A probe for which every interpreter can run the engine host: save and restore tests need no real Python.</summary>
internal sealed class AcceptingPythonProbe : IPythonProbe
{
    public Task<PythonProbeResult> ProbeAsync(string python, IOperationObserver observer, CancellationToken cancellationToken) =>
        Task.FromResult(new PythonProbeResult([], null));
}
