using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// The GPU processes of the host, or of one engine, each tagged with the engine whose process tree holds it
/// (Get-GpuProcess), or with the weight holder it is. Engines and holders are read from the registry, so those other
/// sessions started are recognised too.
/// </summary>
internal sealed class GpuProcessQuery
{
    private readonly EngineRegistry registry;
    private readonly GpuInventory inventory;
    private readonly ProcFs procFs;

    public GpuProcessQuery(EngineRegistry registry, GpuInventory inventory, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.inventory = inventory;
        this.procFs = procFs ?? ProcFs.Host;
    }

    /// <summary>
    /// The GPU processes, only <paramref name="engine"/>'s when given and only <paramref name="processIds"/> when given.
    /// Throws GpuDriverNotFound where there is no usable driver.
    /// </summary>
    public IReadOnlyList<GpuProcess> Find(EngineRecord? engine, IReadOnlyCollection<int>? processIds)
    {
        var inspector = new EngineInspector(registry, procFs);
        var owners = new Dictionary<int, EngineRecord>();
        foreach (var record in registry.List().Where(inspector.IsAlive))
        {
            foreach (var pid in ProcessTree.Discover(record.RootProcessId, procFs).ProcessIds)
            {
                owners[pid] = record;
            }
        }

        IReadOnlyCollection<int>? among = processIds;
        if (engine is not null)
        {
            var tree = owners.Where(o => o.Value.Id == engine.Id).Select(o => o.Key).ToHashSet();
            among = processIds is null ? tree : tree.Intersect(processIds).ToArray();
        }

        var holders = engine is null
            ? new WeightHolderRegistry(registry.Root, procFs).List().Where(h => h.State != WeightHolderState.Exited).ToDictionary(h => h.ProcessId)
            : new Dictionary<int, WeightHolder>();
        return inventory.Collect(among).Processes
            .Select(p => owners.TryGetValue(p.ProcessId, out var owner) ? p with { EngineId = owner.Id, EngineName = owner.Name }
                : holders.TryGetValue(p.ProcessId, out var holder) ? p with { WeightHolderId = holder.Id, WeightHolderName = holder.Name }
                : p)
            .ToArray();
    }
}
