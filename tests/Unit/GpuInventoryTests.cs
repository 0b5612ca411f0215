using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class GpuInventoryTests : IDisposable
{
    private const long GiB = 1L << 30;
    private const string Gpu0 = "GPU-00000000-1111-2222-3333-444444444444";
    private const string Gpu1 = "GPU-55555555-6666-7777-8888-999999999999";

    private readonly string root = Directory.CreateTempSubdirectory("gpu-procfs-").FullName;
    private readonly ProcFs procFs;

    public GpuInventoryTests()
    {
        procFs = new ProcFs(root);
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    // Two GPUs whose minor numbers are not their indices, as happens when the kernel probed them in another order.
    private static readonly GpuDevice[] Devices =
    {
        new() { Index = 0, Uuid = Gpu0, Name = "NVIDIA H100 80GB HBM3", MemoryTotalBytes = 80 * GiB, MinorNumber = 1, DriverVersion = "580.95.05" },
        new() { Index = 1, Uuid = Gpu1, Name = "NVIDIA H100 80GB HBM3", MemoryTotalBytes = 80 * GiB, MinorNumber = 0, DriverVersion = "580.95.05" },
    };

    private sealed class FakeNvml : INvmlReader
    {
        private readonly NvmlSnapshot snapshot;

        public FakeNvml(params NvmlComputeProcess[] processes)
        {
            snapshot = new NvmlSnapshot(Devices, processes);
        }

        public NvmlSnapshot Read() => snapshot;
    }

    private void AddProcess(int pid, int ppid, string name, string[] fds, string nspid = "", ulong start = 5000)
    {
        var dir = Directory.CreateDirectory(Path.Combine(root, pid.ToString())).FullName;
        File.WriteAllText(Path.Combine(dir, "stat"), $"{pid} ({name}) S {ppid} {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 0");
        File.WriteAllText(Path.Combine(dir, "status"), $"Name:\t{name}\nNSpid:\t{pid}{nspid}\n");
        File.WriteAllText(Path.Combine(dir, "cmdline"), $"python3\0-m\0{name}\0");
        var fd = Directory.CreateDirectory(Path.Combine(dir, "fd")).FullName;
        for (var i = 0; i < fds.Length; i++)
        {
            File.CreateSymbolicLink(Path.Combine(fd, (i + 3).ToString()), fds[i]);
        }
    }

    private static readonly string[] CudaOnGpu0 = { "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia1", "socket:[1234]", "/tmp/engine.log" };

    private GpuInventory Inventory(INvmlReader nvml, ICudaCheckpointApi? cuda = null) => new(nvml, procFs, cuda, controllerProcessId: 1);

    [Fact]
    public void AProcessInBothNvmlAndProcIsListedOnceWithNvmlsMemoryAndProcsName()
    {
        AddProcess(100, 1, "core-0", CudaOnGpu0);

        var process = Assert.Single(Inventory(new FakeNvml(new NvmlComputeProcess(100, 0, 2 * GiB))).Collect().Processes);

        Assert.Equal(100, process.ProcessId);
        Assert.Equal(1, process.ParentProcessId);
        Assert.Equal("core-0", process.Name);
        Assert.Equal("python3 -m core-0", process.CommandLine);
        Assert.Equal(0, process.GpuIndex);
        Assert.Equal(Gpu0, process.GpuUuid);
        Assert.Equal(2 * GiB, process.GpuMemoryBytes);
        Assert.Equal(CudaProcessState.Unknown, process.CudaState);
    }

    [Fact]
    public void AProcessOnlyProcSeesIsListedOnTheGpuItsDeviceFileNames()
    {
        // /dev/nvidia0 is minor 0, which NVML says is GPU 1.
        AddProcess(200, 1, "core-1", new[] { "/dev/nvidia-uvm", "/dev/nvidia0" });

        var process = Assert.Single(Inventory(new FakeNvml()).Collect().Processes);

        Assert.Equal(200, process.ProcessId);
        Assert.Equal(1, process.GpuIndex);
        Assert.Equal(Gpu1, process.GpuUuid);
        Assert.Equal(0, process.GpuMemoryBytes);
    }

    [Fact]
    public void AProcessWithCudaButNoGpuYetIsListedWithoutOne()
    {
        AddProcess(210, 1, "frontend", new[] { "/dev/nvidiactl", "/dev/nvidia-uvm" });

        var process = Assert.Single(Inventory(new FakeNvml()).Collect().Processes);

        Assert.Equal(210, process.ProcessId);
        Assert.Null(process.GpuIndex);
        Assert.Null(process.GpuUuid);
    }

    [Fact]
    public void AProcessOnlyNvmlListsIsListedWithWhatNvmlKnows()
    {
        var process = Assert.Single(Inventory(new FakeNvml(new NvmlComputeProcess(300, 1, GiB))).Collect().Processes);

        Assert.Equal(300, process.ProcessId);
        Assert.Equal(string.Empty, process.Name);
        Assert.Equal(1, process.GpuIndex);
        Assert.Equal(GiB, process.GpuMemoryBytes);
    }

    [Fact]
    public void NvmlUsersWithoutCudaAreNotListed()
    {
        AddProcess(400, 1, "nvidia-smi", new[] { "/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia1" });
        AddProcess(401, 1, "bash", new[] { "/dev/pts/0" });

        Assert.Empty(Inventory(new FakeNvml()).Collect().Processes);
    }

    [Fact]
    public void APidNvmlRecordedInANestedNamespaceIsMatchedToItsHostProcess()
    {
        // A restored engine: host PID 500, PID 7 inside its namespace; host PID 7 is something else entirely.
        AddProcess(500, 499, "core-0", CudaOnGpu0, nspid: "\t7");
        AddProcess(7, 2, "kworker", Array.Empty<string>());

        var process = Assert.Single(Inventory(new FakeNvml(new NvmlComputeProcess(7, 0, 3 * GiB))).Collect().Processes);

        Assert.Equal(500, process.ProcessId);
        Assert.Equal("core-0", process.Name);
        Assert.Equal(3 * GiB, process.GpuMemoryBytes);
    }

    [Fact]
    public void AProcessOnTwoGpusHasAnEntryPerGpuOrderedByGpu()
    {
        AddProcess(600, 1, "tp-worker", new[] { "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1" });
        AddProcess(601, 1, "other", CudaOnGpu0);

        var processes = Inventory(new FakeNvml(new NvmlComputeProcess(600, 1, GiB), new NvmlComputeProcess(600, 0, 2 * GiB))).Collect().Processes;

        Assert.Equal(new (int, int?)[] { (600, 0), (601, 0), (600, 1) }, processes.Select(p => (p.ProcessId, p.GpuIndex)));
        Assert.Equal(new[] { 2 * GiB, 0, GiB }, processes.Select(p => p.GpuMemoryBytes));
    }

    [Fact]
    public void TheControllingProcessIsNeverListed()
    {
        AddProcess(1, 0, "pwsh", CudaOnGpu0);

        Assert.Empty(Inventory(new FakeNvml(new NvmlComputeProcess(1, 0, GiB))).Collect().Processes);
    }

    [Fact]
    public void AmongKeepsOnlyTheGivenProcesses()
    {
        AddProcess(700, 1, "core-0", CudaOnGpu0);
        AddProcess(701, 1, "core-1", CudaOnGpu0);

        var processes = Inventory(new FakeNvml(new NvmlComputeProcess(702, 0, GiB))).Collect(new[] { 701, 702 }).Processes;

        Assert.Equal(new[] { 701, 702 }, processes.Select(p => p.ProcessId));
    }

    [Fact]
    public void CudaStatesComeFromTheDriverAndUnknownWhereItDoesNotKnowTheProcess()
    {
        AddProcess(800, 1, "core-0", CudaOnGpu0);
        AddProcess(801, 1, "core-1", CudaOnGpu0);
        var api = new FakeCudaCheckpointApi(800);
        api.SetState(800, CudaProcessState.Checkpointed);

        var processes = Inventory(new FakeNvml(), api).Collect().Processes;

        Assert.Equal(CudaProcessState.Checkpointed, processes.Single(p => p.ProcessId == 800).CudaState);
        Assert.Equal(CudaProcessState.Unknown, processes.Single(p => p.ProcessId == 801).CudaState);
    }

    [Fact]
    public void AnyUsesCudaReadsOnlyProc()
    {
        AddProcess(900, 1, "cpu-engine", new[] { "/tmp/engine.log" });
        AddProcess(901, 1, "nvml-user", new[] { "/dev/nvidiactl", "/dev/nvidia0" });
        AddProcess(902, 1, "core-0", CudaOnGpu0);
        var inventory = Inventory(new ThrowingNvml());

        Assert.False(inventory.AnyUsesCuda(new[] { 900, 901, 999 }));
        Assert.True(inventory.AnyUsesCuda(new[] { 900, 902 }));
    }

    [Fact]
    public void GpuProcessQueryTagsEachProcessWithItsEngineAndFiltersByEngine()
    {
        var registry = new EngineRegistry(Path.Combine(root, "registry"));
        var engine = registry.Create(new EngineSpec(), "gpu-engine", StartSource.Cold);
        engine.RootProcessId = 1000;
        engine.RootStartTime = 5000;
        registry.Save(engine);
        AddProcess(1000, 1, "engine_host", new[] { "/tmp/engine.log" });
        AddProcess(1001, 1000, "core-0", CudaOnGpu0);
        AddProcess(1100, 1, "someone-else", CudaOnGpu0);
        var query = new GpuProcessQuery(registry, Inventory(new FakeNvml()), procFs);

        var all = query.Find(null, null);
        var mine = query.Find(engine, null);

        Assert.Equal((engine.Id, "gpu-engine"), all.Where(p => p.ProcessId == 1001).Select(p => (p.EngineId, p.EngineName)).Single());
        Assert.Null(all.Single(p => p.ProcessId == 1100).EngineId);
        Assert.Equal(1001, Assert.Single(mine).ProcessId);
        Assert.Empty(query.Find(engine, new[] { 1100 }));
    }

    [Fact]
    public void GpuProcessQueryNamesAWeightHolderProcessButNeverPutsItInAnEnginesTree()
    {
        var registry = new EngineRegistry(Path.Combine(root, "registry"));
        var engine = registry.Create(new EngineSpec(), "gpu-engine", StartSource.Cold);
        engine.RootProcessId = 1000;
        engine.RootStartTime = 5000;
        registry.Save(engine);
        AddProcess(1000, 1, "engine_host", CudaOnGpu0);
        var holders = new WeightHolderRegistry(registry.Root, procFs);
        var holder = holders.Create("/models/llama", 0, "/usr/bin/python3", "llama");
        holder.RootProcessId = 1200;
        holder.RootStartTime = 5000;
        holders.Save(holder);
        AddProcess(1200, 1, "weight-holder", CudaOnGpu0);
        var query = new GpuProcessQuery(registry, Inventory(new FakeNvml()), procFs);

        var shown = query.Find(null, null).Single(p => p.ProcessId == 1200);

        Assert.Equal((holder.Id, "llama", null), (shown.WeightHolderId, shown.WeightHolderName, shown.EngineName));
        Assert.DoesNotContain(query.Find(engine, null), p => p.ProcessId == 1200);
    }

    [Fact]
    public void DeviceFilesAreReadFromFdLinks()
    {
        Assert.Null(NvidiaDeviceFiles.From(new[] { "/dev/null", "socket:[1]", "/dev/nvidia" }));
        var files = NvidiaDeviceFiles.From(new[] { "/dev/nvidia-uvm-tools", "/dev/nvidia12", "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidiactl" })!;
        Assert.False(files.UsesCuda);
        Assert.Equal(new[] { 12 }, files.GpuMinorNumbers);
        Assert.True(NvidiaDeviceFiles.From(new[] { "/dev/nvidia-uvm" })!.UsesCuda);
    }

    [Fact]
    public void ProcFsReadsFdLinksAndNothingForAGoneProcess()
    {
        AddProcess(1200, 1, "core-0", new[] { "/dev/nvidia-uvm", "pipe:[42]" });

        Assert.Equal(new[] { "/dev/nvidia-uvm", "pipe:[42]" }, procFs.ReadFileDescriptorTargets(1200).Order());
        Assert.Empty(procFs.ReadFileDescriptorTargets(1201));
    }

    [Fact]
    public void TheHostProcFsSeesThisProcessFileDescriptors()
    {
        var path = Path.Combine(root, "open-file");
        File.WriteAllText(path, "held open");
        using var file = File.OpenRead(path);

        Assert.Contains(path, ProcFs.Host.ReadFileDescriptorTargets(Environment.ProcessId));
    }

    private sealed class ThrowingNvml : INvmlReader
    {
        public NvmlSnapshot Read() => throw new InvalidOperationException("NVML must not be read");
    }
}
