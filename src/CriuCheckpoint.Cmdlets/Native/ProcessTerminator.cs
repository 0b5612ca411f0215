namespace CriuCheckpoint.Native;

/// <summary>Ends processes by PID: SIGTERM, a grace period, then SIGKILL; never by name.</summary>
internal sealed class ProcessTerminator
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private readonly ProcFs procFs;

    public ProcessTerminator(ProcFs? procFs = null) => this.procFs = procFs ?? ProcFs.Host;

    /// <summary>
    /// Every process of a session: the root's descendants and any process left in its session (children keep
    /// the session id when their parent dies and they are re-parented). Start times rule out reused PIDs.
    /// </summary>
    public IReadOnlyList<ProcessNode> SessionMembers(int sessionLeader, ulong leaderStartTime)
    {
        var members = ProcessTree.Discover(sessionLeader, procFs).Processes.ToDictionary(p => p.ProcessId);
        foreach (var pid in procFs.ProcessIds())
        {
            if (!members.ContainsKey(pid) && procFs.ReadStat(pid) is { } stat && stat.SessionId == sessionLeader
                && stat.StartTime >= leaderStartTime && stat.State != 'Z')
            {
                members[pid] = new ProcessNode(pid, stat.ParentProcessId, pid, stat.Name, procFs.ReadCommandLine(pid), stat.StartTime);
            }
        }

        return members.Values.ToArray();
    }

    /// <summary>Waits until none of the processes is alive; false on timeout.</summary>
    public async Task<bool> WaitForExitAsync(IEnumerable<ProcessNode> processes, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var remaining = processes.ToList();
        while (true)
        {
            remaining.RemoveAll(p => !procFs.IsAlive(p.ProcessId, p.StartTime));
            if (remaining.Count == 0)
            {
                return true;
            }

            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>SIGTERM to all, then SIGKILL to what outlives the grace period. True when all are gone.</summary>
    public async Task<bool> TerminateAsync(IReadOnlyCollection<ProcessNode> processes, TimeSpan grace, CancellationToken cancellationToken)
    {
        Signal(processes, Signals.SigTerm);
        if (await WaitForExitAsync(processes, grace, cancellationToken).ConfigureAwait(false))
        {
            return true;
        }

        Signal(processes, Signals.SigKill);
        return await WaitForExitAsync(processes, TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// SIGKILL to the session a detached launch started (SessionProcess.StartAsync): its leader as recorded, or, when the
    /// launch failed before recording it, as its pid file names it, with the start time read now.
    /// </summary>
    public void KillLaunchedSession(int recordedPid, ulong recordedStartTime, string pidFile)
    {
        var pid = recordedPid != 0 ? recordedPid : SessionProcess.ReadPid(pidFile) ?? 0;
        if (pid > 1)
        {
            Kill(SessionMembers(pid, recordedStartTime != 0 ? recordedStartTime : procFs.ReadStat(pid)?.StartTime ?? 0));
        }
    }

    /// <summary>SIGKILL without waiting on cancellation: the cleanup path that must finish even after Ctrl+C.</summary>
    public bool Kill(IReadOnlyCollection<ProcessNode> processes)
    {
        Signal(processes, Signals.SigKill);
        return WaitForExitAsync(processes, TimeSpan.FromSeconds(5), CancellationToken.None).GetAwaiter().GetResult();
    }

    private void Signal(IEnumerable<ProcessNode> processes, int signal)
    {
        foreach (var process in processes)
        {
            if (procFs.IsAlive(process.ProcessId, process.StartTime))
            {
                Signals.Send(process.ProcessId, signal);
            }
        }
    }
}
