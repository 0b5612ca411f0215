using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>The GPUs of a host and the processes using them, at one moment.</summary>
internal sealed record GpuSnapshot(IReadOnlyList<GpuDevice> Devices, IReadOnlyList<GpuProcess> Processes);

/// <summary>
/// Finds the GPUs and the processes that use them. NVML alone misses processes: those it records under the PID of
/// another PID namespace (an engine restored into a fresh namespace), and those that initialised CUDA but hold no
/// memory yet. So NVML's compute processes are merged with a scan of /proc/PID/fd for NVIDIA device files, which finds
/// every CUDA process of this PID namespace by its host PID.
/// </summary>
internal sealed class GpuInventory : IGpuInventory
{
    private readonly INvmlReader nvml;
    private readonly ProcFs procFs;
    private readonly ICudaCheckpointApi? cuda;
    private readonly int controllerProcessId;

    /// <param name="cuda">Where CudaState comes from; without it every process is Unknown.</param>
    /// <param name="controllerProcessId">This process, which is never listed: it drives checkpoints and never is one.</param>
    public GpuInventory(INvmlReader nvml, ProcFs procFs, ICudaCheckpointApi? cuda = null, int? controllerProcessId = null)
    {
        this.nvml = nvml;
        this.procFs = procFs;
        this.cuda = cuda;
        this.controllerProcessId = controllerProcessId ?? Environment.ProcessId;
    }

    /// <summary>The host's NVML and /proc, with CUDA states from the driver where it can tell them.</summary>
    public static GpuInventory ForHost() => new(new NvmlReader(), ProcFs.Host, CudaCheckpointApi.TryOpen());

    /// <summary>
    /// Whether any of the processes has initialised CUDA. Reads /proc alone, so on a host without a GPU driver it
    /// answers false without loading one: the check a checkpoint makes before it needs the driver.
    /// </summary>
    public bool AnyUsesCuda(IEnumerable<int> processIds) =>
        processIds.Any(pid => pid != controllerProcessId && NvidiaDeviceFiles.From(procFs.ReadFileDescriptorTargets(pid))?.UsesCuda == true);

    /// <summary>
    /// The GPUs, and the GPU processes (one entry per process and GPU); with <paramref name="among"/>, only those
    /// processes. Throws GpuDriverNotFound where there is no usable driver.
    /// </summary>
    public GpuSnapshot Collect(IReadOnlyCollection<int>? among = null)
    {
        var snapshot = nvml.Read();
        var held = new Dictionary<int, NvidiaDeviceFiles>();
        foreach (var pid in among ?? procFs.ProcessIds())
        {
            if (pid != controllerProcessId && NvidiaDeviceFiles.From(procFs.ReadFileDescriptorTargets(pid)) is { } files)
            {
                held[pid] = files;
            }
        }

        var minorToIndex = snapshot.Devices.Where(d => d.MinorNumber is not null).ToDictionary(d => d.MinorNumber!.Value, d => d.Index);
        var memory = new Dictionary<(int ProcessId, int? GpuIndex), long>();
        foreach (var entry in snapshot.Processes)
        {
            var pid = HostProcessId(entry, held, snapshot.Devices);
            if (pid != controllerProcessId && (among is null || among.Contains(pid)))
            {
                memory[(pid, entry.DeviceIndex)] = memory.GetValueOrDefault((pid, entry.DeviceIndex)) + (entry.UsedMemoryBytes ?? 0);
            }
        }

        // CUDA processes NVML did not list: on each GPU whose device file they hold, or on none yet.
        foreach (var (pid, files) in held.Where(h => h.Value.UsesCuda))
        {
            foreach (var minor in files.GpuMinorNumbers.Where(minorToIndex.ContainsKey))
            {
                memory.TryAdd((pid, minorToIndex[minor]), 0);
            }

            if (!memory.Keys.Any(k => k.ProcessId == pid))
            {
                memory[(pid, null)] = 0;
            }
        }

        var states = new Dictionary<int, CudaProcessState>();
        var processes = memory
            .OrderBy(m => m.Key.GpuIndex ?? int.MaxValue).ThenBy(m => m.Key.ProcessId)
            .Select(m => Describe(m.Key.ProcessId, snapshot.Devices.FirstOrDefault(d => d.Index == m.Key.GpuIndex), m.Value, states))
            .ToArray();
        return new GpuSnapshot(snapshot.Devices, processes);
    }

    /// <summary>
    /// The host PID of a process NVML lists. Its PID is this namespace's when a CUDA process holds it (or when nothing
    /// else fits); otherwise it is a PID of a nested namespace, recognised as the innermost PID of exactly one CUDA
    /// process on that GPU.
    /// </summary>
    private int HostProcessId(NvmlComputeProcess entry, Dictionary<int, NvidiaDeviceFiles> held, IReadOnlyList<GpuDevice> devices)
    {
        if (held.TryGetValue(entry.ProcessId, out var own) && own.UsesCuda)
        {
            return entry.ProcessId;
        }

        var minor = devices.FirstOrDefault(d => d.Index == entry.DeviceIndex)?.MinorNumber;
        var nested = held
            .Where(h => h.Value.UsesCuda && (minor is null || h.Value.GpuMinorNumbers.Contains(minor.Value)))
            .Select(h => (HostPid: h.Key, Pids: procFs.ReadNamespacePids(h.Key)))
            .Where(c => c.Pids.Count > 1 && c.Pids[^1] == entry.ProcessId)
            .Select(c => c.HostPid)
            .ToArray();
        return nested.Length == 1 ? nested[0] : entry.ProcessId;
    }

    private GpuProcess Describe(int pid, GpuDevice? device, long memoryBytes, Dictionary<int, CudaProcessState> states)
    {
        var stat = procFs.ReadStat(pid);
        if (!states.TryGetValue(pid, out var state))
        {
            state = states[pid] = QueryState(pid);
        }

        return new GpuProcess
        {
            ProcessId = pid,
            ParentProcessId = stat?.ParentProcessId ?? 0,
            Name = stat?.Name ?? string.Empty,
            CommandLine = procFs.ReadCommandLine(pid),
            GpuIndex = device?.Index,
            GpuUuid = device?.Uuid,
            GpuMemoryBytes = memoryBytes,
            CudaState = state,
        };
    }

    private CudaProcessState QueryState(int pid)
    {
        try
        {
            return cuda?.GetState(pid) ?? CudaProcessState.Unknown;
        }
        catch (CudaCallException)
        {
            // Not a CUDA process to the driver (it used NVML only), or gone since the scan.
            return CudaProcessState.Unknown;
        }
    }
}
