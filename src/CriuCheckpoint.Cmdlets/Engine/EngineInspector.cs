using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>Turns a persisted record into a live <see cref="EngineInfo"/>: process tree, state, and what hello says.</summary>
internal sealed class EngineInspector
{
    private readonly EngineRegistry registry;
    private readonly ProcFs procFs;

    public EngineInspector(EngineRegistry registry, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.procFs = procFs ?? ProcFs.Host;
    }

    /// <summary>A restored engine is its frontend once that is known; until then (mid-restore) its namespace wrapper.</summary>
    public bool IsAlive(EngineRecord record) =>
        record.EngineProcessId > 1
            ? procFs.IsAlive(record.EngineProcessId, record.EngineStartTime)
            : record.RootProcessId > 1 && procFs.IsAlive(record.RootProcessId, record.RootStartTime);

    public Func<bool> Liveness(EngineRecord record) => () => IsAlive(record);

    /// <summary>Names identify engines across sessions: a running engine's name is not given to another.</summary>
    public void EnsureNameFree(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return;
        }

        if (registry.List().FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.OrdinalIgnoreCase) && IsAlive(r)) is { } taken)
        {
            throw new CriuCheckpointException(ErrorIds.EngineNameInUse, FailureKind.ResourceExists,
                $"An engine named '{name}' is already running (id {taken.Id}, PID {taken.RootProcessId}).", name);
        }
    }

    /// <summary>Opens a link to a serving engine; fails with a clear error when it is not serving.</summary>
    public EngineLink Connect(EngineRecord record)
    {
        if (!IsAlive(record))
        {
            throw new CriuCheckpointException(ErrorIds.EngineNotRunning, FailureKind.ResourceUnavailable,
                $"Engine {record.Name} ({record.Id}) is not running.", record.Name);
        }

        var runDirectory = new RunDirectory(record.RunDirectory);
        var ready = runDirectory.ReadReady() ?? throw new CriuCheckpointException(
            ErrorIds.EngineNotReady, FailureKind.ResourceUnavailable,
            $"Engine {record.Name} ({record.Id}) is not serving (starting, or prepared for a checkpoint).", record.Name);
        return Open(record, runDirectory, ready);
    }

    /// <summary>The link to a serving engine, with the keys its run directory holds (read after ready.json, as the engine writes them before it).</summary>
    private EngineLink Open(EngineRecord record, RunDirectory runDirectory, ReadyInfo ready) =>
        new(ready.Endpoint, runDirectory.ReadLinkKeys(), Liveness(record));

    /// <summary>
    /// What the engine host timed of its own start (ready.json), for an engine whose record keeps no startup: one
    /// started by a module that did not keep it. The launcher's own phases (launch, handshake, hello) are unknown then.
    /// </summary>
    private static PhaseTimings? EngineSideStartup(ReadyInfo? ready) =>
        ready is null || ready.Phases.Count == 0 ? null : PhaseTimings.FromSeconds(ready.Phases, ready.Phases.Values.Sum());

    /// <summary>Describes an engine; with <paramref name="probe"/> it asks the engine itself (hello) for its state.</summary>
    public async Task<EngineInfo> DescribeAsync(EngineRecord record, bool probe, TimeSpan timeout, CancellationToken cancellationToken, PhaseTimings? startupTime = null)
    {
        var runDirectory = new RunDirectory(record.RunDirectory);
        var alive = IsAlive(record);
        if (!alive)
        {
            // An engine killed outright cannot remove its own ready.json; no client may take it for a live endpoint.
            runDirectory.RemoveReady();
        }

        var ready = alive ? runDirectory.ReadReady() : null;
        HelloReply? hello = null;
        HealthReply? health = null;
        var failed = alive ? null : runDirectory.ReadFailed();
        var reason = failed is null ? null : $"{failed.Message} ({failed.Code})";
        var state = alive
            ? ready is not null ? EngineState.Ready : File.Exists(runDirectory.ResumeFifo) ? EngineState.Prepared : EngineState.Starting
            : failed is not null ? EngineState.Failed : EngineState.Stopped;
        if (probe && state == EngineState.Ready)
        {
            try
            {
                using var link = Open(record, runDirectory, ready!);
                hello = await link.CallAsync<HelloReply>(LinkProtocol.Ops.Hello, timeout, cancellationToken).ConfigureAwait(false);
                health = await link.CallAsync<HealthReply>(LinkProtocol.Ops.Health, timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (CriuCheckpointException e) when (e.ErrorId is ErrorIds.LinkTimeout or ErrorIds.EngineDied)
            {
                state = IsAlive(record) ? EngineState.Failed : EngineState.Stopped;
                reason = state == EngineState.Failed ? $"runs but does not answer hello: {e.Message}" : null;
            }
        }

        return new EngineInfo
        {
            Id = record.Id,
            Name = record.Name,
            Backend = hello?.Backend ?? record.Spec.Backend,
            Model = hello?.Model ?? record.Spec.Model,
            Device = hello?.Device ?? record.Spec.Device,
            Endpoint = ready?.Endpoint,
            State = state,
            FailureReason = reason,
            StartedFrom = record.StartedFrom,
            ProcessId = record.RootProcessId,
            ProcessTree = alive ? ProcessTree.Discover(record.RootProcessId, procFs).Processes : Array.Empty<ProcessNode>(),
            HostMemoryBytes = hello?.HostMemoryBytes ?? 0,
            GpuMemoryBytes = hello?.GpuMemoryBytes ?? 0,
            KvCacheBytes = hello?.KvCacheBytes ?? 0,
            InFlightRequests = health?.InFlight,
            ConfigHash = record.ConfigHash,
            NativeConfigHash = hello?.ConfigHash,
            RunDirectory = record.RunDirectory,
            LogPath = runDirectory.LogFile,
            CreatedAt = record.CreatedAt,
            StartupTime = startupTime ?? record.Startup() ?? EngineSideStartup(ready),
            Record = record,
        };
    }
}
