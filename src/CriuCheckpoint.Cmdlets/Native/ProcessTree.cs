namespace CriuCheckpoint.Native;

/// <summary>One process of an engine's tree: host PID and the PID it has inside its own PID namespace.</summary>
public sealed record ProcessNode(int ProcessId, int ParentProcessId, int NamespaceProcessId, string Name, string CommandLine, ulong StartTime)
{
    public override string ToString() => $"{ProcessId} {Name}";
}

/// <summary>A root process and all its descendants, discovered from procfs.</summary>
internal sealed class ProcessTree
{
    public ProcessTree(IReadOnlyList<ProcessNode> processes)
    {
        Processes = processes;
    }

    public ProcessNode? Root => Processes.Count > 0 ? Processes[0] : null;

    /// <summary>Root first, then descendants breadth-first.</summary>
    public IReadOnlyList<ProcessNode> Processes { get; }

    public IEnumerable<int> ProcessIds => Processes.Select(p => p.ProcessId);

    public static ProcessTree Empty { get; } = new(Array.Empty<ProcessNode>());

    public static ProcessTree Discover(int rootPid, ProcFs? procFs = null)
    {
        procFs ??= ProcFs.Host;
        var stats = new Dictionary<int, ProcStat>();
        foreach (var pid in procFs.ProcessIds())
        {
            if (procFs.ReadStat(pid) is { } stat && stat.State != 'Z')
            {
                stats[pid] = stat;
            }
        }

        if (!stats.ContainsKey(rootPid))
        {
            return Empty;
        }

        var children = stats.Values.ToLookup(s => s.ParentProcessId, s => s.ProcessId);
        var order = new List<ProcessNode>();
        var queue = new Queue<int>();
        queue.Enqueue(rootPid);
        while (queue.Count > 0)
        {
            var pid = queue.Dequeue();
            var stat = stats[pid];
            var nsPids = procFs.ReadNamespacePids(pid);
            order.Add(new ProcessNode(pid, stat.ParentProcessId, nsPids.Count > 0 ? nsPids[^1] : pid, stat.Name, procFs.ReadCommandLine(pid), stat.StartTime));
            foreach (var child in children[pid].Order())
            {
                queue.Enqueue(child);
            }
        }

        return new ProcessTree(order);
    }

    public override string ToString() => string.Join(", ", Processes.Select(p => p.ProcessId));
}
