using System.Diagnostics;
using System.Globalization;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>
/// Cold-starts an engine host: detached in its own session (setsid), stdin from /dev/null, stdout and stderr
/// to the run directory's log, never a TTY; then waits for its ready handshake and says hello.
/// On every path out that is not success, the processes it started are killed by PID and the run dir removed.
/// </summary>
internal sealed class EngineLauncher
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(25);

    private readonly EngineRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;
    private readonly PythonLocator python;

    public EngineLauncher(EngineRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null, PythonLocator? python = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
        this.python = python ?? PythonLocator.Host;
    }

    public async Task<EngineInfo> StartAsync(EngineSpec spec, string? name, TimeSpan readyTimeout, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        var timings = new PhaseTimings();
        var activity = $"Starting engine {name ?? spec.Model}";
        spec = await ResolveAsync(spec, cancellationToken).ConfigureAwait(false);
        new EngineInspector(registry, procFs).EnsureNameFree(name);

        var record = registry.Create(spec, name, StartSource.Cold);
        var runDirectory = new RunDirectory(record.RunDirectory);
        var succeeded = false;
        try
        {
            observer.Progress(activity, "Launching the engine host", 0);
            var phase = Stopwatch.StartNew();
            var pid = await LaunchDetachedAsync(record, runDirectory, cancellationToken).ConfigureAwait(false);
            record.RootProcessId = pid;
            record.RootStartTime = procFs.ReadStat(pid)?.StartTime ?? 0;
            registry.Save(record);
            timings.Add("launch", phase.Elapsed);
            observer.Verbose($"Engine {record.Name}: host PID {pid}, run directory {record.RunDirectory}, launch {phase.Elapsed.TotalSeconds:0.000} s.");

            phase.Restart();
            var ready = await WaitForReadyAsync(record, runDirectory, activity, readyTimeout, cancellationToken).ConfigureAwait(false);
            foreach (var (engineActivity, seconds) in ready.Phases)
            {
                timings.Add(engineActivity, TimeSpan.FromSeconds(seconds));
            }

            timings.Add("handshake", phase.Elapsed - TimeSpan.FromSeconds(ready.Phases.Values.Sum()) is { Ticks: > 0 } rest ? rest : TimeSpan.Zero);
            observer.Verbose($"Engine {record.Name}: ready at {ready.Endpoint} after {phase.Elapsed.TotalSeconds:0.000} s.");

            phase.Restart();
            observer.Progress(activity, "Saying hello over the link", 95);
            // -TimeoutSec bounds the whole start: what the wait for ready.json left, and a few seconds, for the hello.
            var helloTimeout = TimeSpan.FromSeconds(Math.Clamp((readyTimeout - total.Elapsed).TotalSeconds + 5, 1, 15));
            var info = await new EngineInspector(registry, procFs).DescribeAsync(record, probe: true, helloTimeout, cancellationToken, timings).ConfigureAwait(false);
            timings.Add("hello", phase.Elapsed);
            timings.Total = total.Elapsed;
            if (info.State != EngineState.Ready)
            {
                throw new CriuCheckpointException(ErrorIds.EngineStartupFailed, FailureKind.InvalidOperation,
                    $"Engine {record.Name} wrote its ready file but does not answer on {info.Endpoint}.", record.Name,
                    details: runDirectory.LogTail());
            }

            record.RecordStartup(timings);
            registry.Save(record);

            observer.Progress(activity, "Ready", 100);
            succeeded = true;
            return info;
        }
        finally
        {
            if (!succeeded)
            {
                Abandon(record);
            }
        }
    }

    /// <summary>
    /// The spec as it will run: the Python found, <c>auto</c> resolved to a backend, the backend's default model filled
    /// in, and validated. Its config hash is the engine's.
    /// </summary>
    public async Task<EngineSpec> ResolveAsync(EngineSpec spec, CancellationToken cancellationToken)
    {
        var interpreter = await python.ResolveAsync(spec.Python, observer, cancellationToken).ConfigureAwait(false);
        var backends = await EngineBackends.DescribeAsync(interpreter, observer, cancellationToken).ConfigureAwait(false);
        var backend = backends.Resolve(spec.Backend);
        if (backend != spec.Backend)
        {
            observer.Verbose($"-Backend auto chose {backend}.");
        }

        var resolved = spec with
        {
            Python = interpreter,
            Backend = backend,
            Model = string.IsNullOrEmpty(spec.Model) ? backends.Find(backend)?.DefaultModel ?? string.Empty : spec.Model,
        };
        Validate(resolved);
        return resolved;
    }

    /// <summary>Kills whatever the failed start left running (by PID) and removes its run directory.</summary>
    public void Abandon(EngineRecord record)
    {
        new ProcessTerminator(procFs).KillLaunchedSession(record.RootProcessId, record.RootStartTime, new RunDirectory(record.RunDirectory).PidFile);
        registry.Remove(record);
    }

    private static void Validate(EngineSpec spec)
    {
        if (string.IsNullOrEmpty(spec.Model))
        {
            throw new CriuCheckpointException(ErrorIds.ModelNotFound, FailureKind.InvalidArgument,
                $"The {spec.Backend} backend has no default model: pass -Model (a model directory or a hub name).", spec.Backend);
        }

        if (EngineBackends.LooksLikePath(spec.Model) && !Directory.Exists(spec.Model) && !File.Exists(spec.Model))
        {
            throw new CriuCheckpointException(ErrorIds.ModelNotFound, FailureKind.ObjectNotFound,
                $"Model path '{spec.Model}' does not exist.", spec.Model);
        }

        if (spec.Workers < 1)
        {
            throw new CriuCheckpointException(ErrorIds.BadEngineArgs, FailureKind.InvalidArgument,
                $"Workers must be at least 1, not {spec.Workers}.", spec.Workers);
        }
    }

    private async Task<int> LaunchDetachedAsync(EngineRecord record, RunDirectory runDirectory, CancellationToken cancellationToken)
    {
        var command = new List<string> { record.Python, "-m", "engine_host" };
        command.AddRange(EngineCommandLine(record));
        observer.Debug(CommandLine.Format(command));
        var environment = EngineHostEnvironment.Create();
        try
        {
            return await SessionProcess.StartAsync(command, runDirectory.PidFile, runDirectory.LogFile, record.RunDirectory, environment, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (NativeException e)
        {
            throw new CriuCheckpointException(ErrorIds.EngineStartupFailed, e.Failure switch
            {
                NativeFailure.Missing => FailureKind.NotInstalled,
                NativeFailure.TimedOut => FailureKind.OperationTimeout,
                _ => FailureKind.InvalidOperation,
            }, e.Message, e.Source, e, e.Details);
        }
    }

    /// <summary>The engine host's command line (docs/protocol.md): everything in the spec, nothing else.</summary>
    public static IReadOnlyList<string> EngineCommandLine(EngineRecord record)
    {
        var spec = record.Spec;
        var arguments = new List<string>
        {
            "--run-dir", record.RunDirectory,
            "--backend", spec.Backend,
            "--model", spec.Model,
            "--workers", spec.Workers.ToString(CultureInfo.InvariantCulture),
            "--device", spec.Device,
            "--dtype", spec.Dtype,
            "--gpu-memory-utilization", spec.GpuMemoryUtilization.ToString(CultureInfo.InvariantCulture),
            "--engine-args", ConfigHash.CanonicalJson(spec.EngineArgs),
        };
        if (spec.MaxModelLen is { } maxModelLen)
        {
            arguments.Add("--max-model-len");
            arguments.Add(maxModelLen.ToString(CultureInfo.InvariantCulture));
        }

        return arguments;
    }

    private async Task<ReadyInfo> WaitForReadyAsync(EngineRecord record, RunDirectory runDirectory, string activity, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        string? shown = null;
        while (true)
        {
            if (runDirectory.ReadFailed() is { } failed)
            {
                throw StartupFailure(record, failed, runDirectory.LogTail());
            }

            if (runDirectory.ReadReady() is { } ready)
            {
                return ready;
            }

            if (!procFs.IsAlive(record.RootProcessId, record.RootStartTime))
            {
                throw new CriuCheckpointException(ErrorIds.EngineStartupFailed, FailureKind.InvalidOperation,
                    $"Engine {record.Name} (PID {record.RootProcessId}) exited during startup. The end of its log ({runDirectory.LogFile}) is below.",
                    record.Name, details: runDirectory.LogTail());
            }

            if (waited.Elapsed > timeout)
            {
                throw new CriuCheckpointException(ErrorIds.EngineStartupTimeout, FailureKind.OperationTimeout,
                    $"Engine {record.Name} was not ready within {timeout.TotalSeconds:0.#} s (-TimeoutSec). It was stopped. The end of its log is below.",
                    record.Name, details: runDirectory.LogTail());
            }

            var (status, percent) = StartupPhase.Describe(runDirectory.ReadPhase(), record.Spec);
            if (status != shown)
            {
                observer.Progress(activity, status, percent);
                shown = status;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    internal static CriuCheckpointException StartupFailure(EngineRecord record, FailedInfo failed, string logTail)
    {
        var (errorId, kind) = failed.Code switch
        {
            "unknown_backend" => (ErrorIds.UnknownBackend, FailureKind.InvalidArgument),
            "model_not_found" => (ErrorIds.ModelNotFound, FailureKind.ObjectNotFound),
            "unsupported_model" => (ErrorIds.UnsupportedModel, FailureKind.InvalidArgument),
            "bad_engine_args" => (ErrorIds.BadEngineArgs, FailureKind.InvalidArgument),
            "backend_unavailable" => (ErrorIds.BackendUnavailable, FailureKind.NotInstalled),
            "missing_dependency" => (ErrorIds.PythonPackageMissing, FailureKind.NotInstalled),
            "curve_unavailable" => (ErrorIds.CurveUnavailable, FailureKind.NotInstalled),
            _ => (ErrorIds.EngineStartupFailed, FailureKind.InvalidOperation),
        };
        return new CriuCheckpointException(errorId, kind, $"Engine {record.Name} failed to start: {failed.Message} ({failed.Code}).",
            record.Name, details: logTail);
    }
}
