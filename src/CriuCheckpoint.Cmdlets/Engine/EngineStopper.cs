using System.Diagnostics;
using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>Stops an engine: graceful shutdown over the link, then SIGTERM and SIGKILL of its whole tree by PID.</summary>
internal sealed class EngineStopper
{
    private readonly EngineRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;

    public EngineStopper(EngineRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
    }

    /// <summary>Stops the engine and removes its run directory. Returns how long it took.</summary>
    public async Task<TimeSpan> StopAsync(EngineRecord record, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var activity = $"Stopping engine {record.Name}";
        var inspector = new EngineInspector(registry, procFs);
        var terminator = new ProcessTerminator(procFs);
        if (inspector.IsAlive(record))
        {
            // Collected before anything exits: once the root is gone its children are re-parented.
            var members = terminator.SessionMembers(record.RootProcessId, record.RootStartTime);
            observer.Progress(activity, "Asking the engine to shut down", 10);
            if (await TryShutdownAsync(record, inspector, cancellationToken).ConfigureAwait(false)
                && await terminator.WaitForExitAsync(members, gracePeriod, cancellationToken).ConfigureAwait(false))
            {
                observer.Verbose($"Engine {record.Name} shut down gracefully in {watch.Elapsed.TotalSeconds:0.000} s.");
            }
            else
            {
                observer.Progress(activity, "Terminating the process tree", 60);
                var stragglers = members.Where(p => procFs.IsAlive(p.ProcessId, p.StartTime)).ToArray();
                observer.Verbose($"Engine {record.Name}: terminating PIDs {string.Join(", ", stragglers.Select(p => p.ProcessId))}.");
                if (!await terminator.TerminateAsync(stragglers, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false))
                {
                    throw new CriuCheckpointException(ErrorIds.StopFailed, FailureKind.InvalidOperation,
                        $"Engine {record.Name}: processes {string.Join(", ", stragglers.Where(p => procFs.IsAlive(p.ProcessId, p.StartTime)).Select(p => p.ProcessId))} survived SIGKILL.",
                        record.Name);
                }
            }
        }

        registry.Remove(record);
        observer.Progress(activity, "Stopped", 100);
        return watch.Elapsed;
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
