using System.Diagnostics;
using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>
/// Stops an engine: graceful shutdown over the link, then SIGTERM and SIGKILL of its whole tree by PID (for a
/// restored engine its namespace's init first, so the kernel ends the rest), then, where it used a GPU, waits until
/// the driver has taken its GPU memory back.
/// </summary>
internal sealed class EngineStopper
{
    private static readonly TimeSpan GpuReleaseTimeout = TimeSpan.FromSeconds(30);
    private readonly EngineRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;
    private readonly IGpuMemoryWatch? gpuMemory;

    public EngineStopper(EngineRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null, IGpuMemoryWatch? gpuMemory = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
        this.gpuMemory = gpuMemory;
    }

    /// <summary>Stops the engine and removes its run directory. Returns how long it took.</summary>
    public async Task<TimeSpan> StopAsync(EngineRecord record, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var activity = $"Stopping engine {record.Name}";
        // Collected before anything exits: once a parent is gone its children are re-parented.
        var members = Members(record);
        if (members.Count > 0)
        {
            var usedGpu = gpuMemory?.UsesGpu(members) == true;
            observer.Progress(activity, "Asking the engine to shut down", 10);
            if (!await TryShutdownAsync(record, new EngineInspector(registry, procFs), cancellationToken).ConfigureAwait(false)
                || !await new ProcessTerminator(procFs).WaitForExitAsync(members, gracePeriod, cancellationToken).ConfigureAwait(false))
            {
                observer.Progress(activity, "Terminating the process tree", 50);
                await TerminateAsync(record, members, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                observer.Verbose($"Engine {record.Name} shut down gracefully in {watch.Elapsed.TotalSeconds:0.000} s.");
            }

            if (usedGpu)
            {
                observer.Progress(activity, "Waiting for the driver to release its GPU memory", 80);
                await WaitForGpuReleaseAsync(record, members, cancellationToken).ConfigureAwait(false);
            }
        }

        registry.Remove(record);
        observer.Progress(activity, "Stopped", 100);
        return watch.Elapsed;
    }

    /// <summary>Every process of the engine: its session, and for a restored engine its namespace init's and frontend's trees.</summary>
    private IReadOnlyList<ProcessNode> Members(EngineRecord record)
    {
        var terminator = new ProcessTerminator(procFs);
        var members = new Dictionary<int, ProcessNode>();
        var roots = new[] { (record.RootProcessId, record.RootStartTime), (record.NamespaceInitProcessId, record.NamespaceInitStartTime), (record.EngineProcessId, record.EngineStartTime) };
        foreach (var (pid, startTime) in roots.Where(r => r.Item1 > 1 && procFs.IsAlive(r.Item1, r.Item2)))
        {
            foreach (var member in terminator.SessionMembers(pid, startTime))
            {
                members.TryAdd(member.ProcessId, member);
            }
        }

        return members.Values.ToArray();
    }

    private async Task TerminateAsync(EngineRecord record, IReadOnlyList<ProcessNode> members, CancellationToken cancellationToken)
    {
        var terminator = new ProcessTerminator(procFs);
        if (members.FirstOrDefault(p => p.ProcessId == record.NamespaceInitProcessId && p.StartTime == record.NamespaceInitStartTime) is { } init)
        {
            terminator.Kill(new[] { init });
        }

        var stragglers = members.Where(p => procFs.IsAlive(p.ProcessId, p.StartTime)).ToArray();
        observer.Verbose($"Engine {record.Name}: terminating PIDs {string.Join(", ", stragglers.Select(p => p.ProcessId))}.");
        if (!await terminator.TerminateAsync(stragglers, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false))
        {
            throw new CriuCheckpointException(ErrorIds.StopFailed, FailureKind.InvalidOperation,
                $"Engine {record.Name}: processes {string.Join(", ", stragglers.Where(p => procFs.IsAlive(p.ProcessId, p.StartTime)).Select(p => p.ProcessId))} survived SIGKILL.",
                record.Name);
        }
    }

    private async Task WaitForGpuReleaseAsync(EngineRecord record, IReadOnlyList<ProcessNode> members, CancellationToken cancellationToken)
    {
        var released = Stopwatch.StartNew();
        var held = await gpuMemory!.WaitForReleaseAsync(members, GpuReleaseTimeout, cancellationToken).ConfigureAwait(false);
        if (held > 0)
        {
            throw new CriuCheckpointException(ErrorIds.StopFailed, FailureKind.ResourceUnavailable,
                $"Engine {record.Name}: its processes are gone, but the NVIDIA driver still holds {held >> 20} MiB of GPU memory for them after {GpuReleaseTimeout.TotalSeconds:0} s. "
                + "Get-GpuProcess shows the GPUs; a driver that keeps memory of dead processes needs its GPU reset.", record.Name);
        }

        observer.Verbose($"Engine {record.Name}: GPU memory released {released.Elapsed.TotalSeconds:0.000} s after its processes exited.");
    }

    private async Task<bool> TryShutdownAsync(EngineRecord record, EngineInspector inspector, CancellationToken cancellationToken)
    {
        if (new RunDirectory(record.RunDirectory).ReadReady() is null)
        {
            return false;
        }

        try
        {
            using var link = inspector.Connect(record);
            await link.CallAsync<Dictionary<string, object?>>(LinkProtocol.Ops.Shutdown, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (CriuCheckpointException e)
        {
            observer.Verbose($"Engine {record.Name} did not accept shutdown ({e.ErrorId}): {e.Message}");
            return false;
        }
    }
}
