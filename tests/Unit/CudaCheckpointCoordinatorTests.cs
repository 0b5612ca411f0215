using CriuCheckpoint.Core;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class CudaCheckpointCoordinatorTests
{
    private static readonly int[] Pids = { 101, 102, 103 };
    private static readonly CudaCheckpointOptions Options = new();

    private static GpuProcess Gpu(int pid, int gpu = 0, long bytes = 1L << 30) =>
        new() { ProcessId = pid, Name = $"core-{pid}", GpuIndex = gpu, GpuMemoryBytes = bytes, CudaState = CudaProcessState.Running };

    private static GpuProcess[] Tree(params int[] pids) => pids.Select(pid => Gpu(pid)).ToArray();

    private static CudaCallException CudaError(string function, int pid, int result, string name) => new(function, pid, result, name);

    private static void AssertAllRunning(FakeCudaCheckpointApi api, params int[] pids)
    {
        foreach (var pid in pids)
        {
            Assert.Equal(CudaProcessState.Running, api.StateOf(pid));
        }
    }

    [Fact]
    public async Task CheckpointLocksEveryProcessBeforeCheckpointingAnyAndReportsPhasesAndBytes()
    {
        var api = new FakeCudaCheckpointApi(Pids) { Delay = (op, _) => TimeSpan.FromMilliseconds(op == "lock" ? 30 : 10) };
        // Process 103 holds two GPUs: its memory on both counts, itself once.
        var processes = Tree(101, 102).Append(Gpu(103, 0, 2L << 30)).Append(Gpu(103, 1, 3L << 30)).ToArray();

        var result = await new CudaCheckpointCoordinator(api).CheckpointAsync(processes, Options, CancellationToken.None);

        var locks = api.CallsOf("lock").ToArray();
        var checkpoints = api.CallsOf("checkpoint").ToArray();
        Assert.Equal(Pids, locks.Select(c => c.ProcessId).Order());
        Assert.Equal(Pids, checkpoints.Select(c => c.ProcessId).Order());
        Assert.True(locks.Max(c => c.Ended) <= checkpoints.Min(c => c.Started), "a checkpoint started before every process was locked");
        Assert.Equal(Pids, result.ProcessIds.Order());
        Assert.Equal((1L << 30) + (1L << 30) + (5L << 30), result.GpuBytes);
        Assert.Equal(new[] { "cuda-lock", "cuda-checkpoint" }, result.Timings.Phases.Select(p => p.Key));
        Assert.True(result.Timings["cuda-lock"] >= 0.025);
        Assert.All(Pids, pid => Assert.Equal(CudaProcessState.Checkpointed, api.StateOf(pid)));
    }

    [Fact]
    public async Task CheckpointsOfDifferentProcessesOverlapInTime()
    {
        var pids = new[] { 101, 102, 103, 104 };
        var api = new FakeCudaCheckpointApi(pids) { Delay = (op, _) => op == "checkpoint" ? TimeSpan.FromMilliseconds(400) : TimeSpan.Zero };

        await new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(pids), Options, CancellationToken.None);

        var checkpoints = api.CallsOf("checkpoint").ToArray();
        Assert.Equal(4, checkpoints.Length);
        Assert.True(checkpoints.Max(c => c.Started) < checkpoints.Min(c => c.Ended), "the checkpoints ran one after another, not in parallel");
    }

    [Fact]
    public async Task MaxParallelismOneCheckpointsOneProcessAtATime()
    {
        var api = new FakeCudaCheckpointApi(Pids) { Delay = (op, _) => op == "checkpoint" ? TimeSpan.FromMilliseconds(50) : TimeSpan.Zero };

        await new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options with { MaxParallelism = 1 }, CancellationToken.None);

        var checkpoints = api.CallsOf("checkpoint").OrderBy(c => c.Started).ToArray();
        Assert.All(checkpoints.Zip(checkpoints.Skip(1)), pair => Assert.True(pair.First.Ended <= pair.Second.Started));
    }

    [Fact]
    public async Task RestoreRestoresEveryProcessBeforeUnlockingAnyThenAllRun()
    {
        var api = new FakeCudaCheckpointApi(Pids) { Delay = (op, pid) => TimeSpan.FromMilliseconds(op == "restore" ? 100 * (pid - 100) : 5) };
        var coordinator = new CudaCheckpointCoordinator(api);
        await coordinator.CheckpointAsync(Tree(Pids), Options, CancellationToken.None);

        var result = await coordinator.RestoreAsync(Pids, null, Options, CancellationToken.None);

        var restores = api.CallsOf("restore").ToArray();
        var unlocks = api.CallsOf("unlock").ToArray();
        Assert.Equal(Pids, restores.Select(c => c.ProcessId).Order());
        Assert.Equal(Pids, unlocks.Select(c => c.ProcessId).Order());
        Assert.True(restores.Max(c => c.Ended) <= unlocks.Min(c => c.Started), "a process was unlocked before every process was restored");
        Assert.True(restores.Max(c => c.Started) < restores.Min(c => c.Ended), "the restores ran one after another, not in parallel");
        Assert.All(restores, c => Assert.Empty(c.GpuPairs!));
        Assert.Equal(new[] { "cuda-restore", "cuda-unlock" }, result.Timings.Phases.Select(p => p.Key));
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task RestoreHandsEveryProcessTheGpuPairs()
    {
        var api = new FakeCudaCheckpointApi(Pids);
        var coordinator = new CudaCheckpointCoordinator(api);
        await coordinator.CheckpointAsync(Tree(Pids), Options, CancellationToken.None);
        var pairs = GpuMap.Pairs(
            new[] { "GPU-00000000-0000-0000-0000-000000000000", "GPU-11111111-1111-1111-1111-111111111111" },
            new[] { "GPU-00000000-0000-0000-0000-000000000000", "GPU-11111111-1111-1111-1111-111111111111" },
            new Dictionary<string, string>
            {
                ["GPU-00000000-0000-0000-0000-000000000000"] = "GPU-11111111-1111-1111-1111-111111111111",
                ["GPU-11111111-1111-1111-1111-111111111111"] = "GPU-00000000-0000-0000-0000-000000000000",
            });

        await coordinator.RestoreAsync(Pids, pairs, Options, CancellationToken.None);

        Assert.All(api.CallsOf("restore"), call => Assert.Equal(pairs, call.GpuPairs));
        Assert.Equal("GPU-11111111-1111-1111-1111-111111111111", pairs[0].NewUuid);
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task AFailingCheckpointRestoresAndUnlocksEveryProcessAndNamesThePidAndTheError()
    {
        var api = new FakeCudaCheckpointApi(Pids)
        {
            Fail = (op, pid) => op == "checkpoint" && pid == 102
                ? CudaError("cuCheckpointProcessCheckpoint", pid, 2, "CUDA_ERROR_OUT_OF_MEMORY")
                : null,
        };

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaCheckpointFailed, e.ErrorId);
        Assert.Equal(FailureKind.InvalidOperation, e.Kind);
        Assert.Equal(102, e.Target);
        Assert.Contains("102 (core-102)", e.Message);
        Assert.Contains("CUDA_ERROR_OUT_OF_MEMORY", e.Message);
        Assert.Contains("restored and unlocked", e.Message);
        Assert.Equal(new[] { 101, 103 }, api.CallsOf("restore").Select(c => c.ProcessId).Order());
        Assert.Equal(Pids, api.CallsOf("unlock").Select(c => c.ProcessId).Order());
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task AFailingLockUnlocksTheLockedProcessesAndCheckpointsNone()
    {
        var api = new FakeCudaCheckpointApi(Pids)
        {
            Fail = (op, pid) => op == "lock" && pid == 103 ? CudaError("cuCheckpointProcessLock", pid, 801, "CUDA_ERROR_NOT_SUPPORTED") : null,
        };

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaCheckpointFailed, e.ErrorId);
        Assert.Contains("Locking CUDA in process 103 (core-103) failed", e.Message);
        Assert.Contains("CUDA_ERROR_NOT_SUPPORTED", e.Message);
        Assert.Empty(api.CallsOf("checkpoint"));
        Assert.Equal(new[] { 101, 102 }, api.CallsOf("unlock").Select(c => c.ProcessId).Order());
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task ALockTheDriverTimesOutIsCudaLockTimeout()
    {
        // The driver's own lock timeout: CUDA_ERROR_NOT_READY, and the process is left running.
        var api = new FakeCudaCheckpointApi(Pids)
        {
            Fail = (op, pid) => op == "lock" && pid == 101 ? CudaError("cuCheckpointProcessLock", pid, CudaResult.NotReady, "CUDA_ERROR_NOT_READY") : null,
        };

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaLockTimeout, e.ErrorId);
        Assert.Equal(FailureKind.OperationTimeout, e.Kind);
        Assert.Contains("101 (core-101)", e.Message);
        Assert.Contains("CUDA_ERROR_NOT_READY", e.Message);
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task ACheckpointThatOutlivesItsTimeoutFailsAndIsUndoneOnceItEnds()
    {
        var api = new FakeCudaCheckpointApi(Pids)
        {
            Delay = (op, pid) => op == "checkpoint" && pid == 102 ? TimeSpan.FromMilliseconds(900) : TimeSpan.Zero,
        };
        var options = Options with { CheckpointTimeout = TimeSpan.FromMilliseconds(150), OverrunGrace = TimeSpan.FromSeconds(30) };

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaCheckpointFailed, e.ErrorId);
        Assert.Equal(FailureKind.OperationTimeout, e.Kind);
        Assert.Contains("102 (core-102)", e.Message);
        Assert.Contains("did not answer within", e.Message);
        // The late checkpoint was waited for, then restored like the others.
        var late = Assert.Single(api.CallsOf("checkpoint"), c => c.ProcessId == 102);
        Assert.True(late.Ended <= api.CallsOf("restore").Single(c => c.ProcessId == 102).Started);
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task CancellingWhileLockingUnlocksEveryProcessAndCheckpointsNone()
    {
        using var cancellation = new CancellationTokenSource();
        var api = new FakeCudaCheckpointApi(Pids)
        {
            OnCall = (op, pid) =>
            {
                if (op == "lock" && pid == 102)
                {
                    cancellation.Cancel();
                }
            },
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options, cancellation.Token));

        Assert.Empty(api.CallsOf("checkpoint"));
        var locked = api.CallsOf("lock").Where(c => c.Succeeded).Select(c => c.ProcessId).Order().ToArray();
        Assert.Contains(102, locked);
        Assert.Equal(locked, api.CallsOf("unlock").Select(c => c.ProcessId).Order());
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task CancellingWhileCheckpointingWaitsForTheCheckpointUnderWayThenRollsEverythingBack()
    {
        using var cancellation = new CancellationTokenSource();
        var api = new FakeCudaCheckpointApi(Pids)
        {
            Delay = (op, _) => op == "checkpoint" ? TimeSpan.FromMilliseconds(200) : TimeSpan.Zero,
            OnCall = (op, _) =>
            {
                if (op == "checkpoint")
                {
                    cancellation.Cancel();
                }
            },
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options with { MaxParallelism = 1 }, cancellation.Token));

        var checkpointed = Assert.Single(api.CallsOf("checkpoint"));
        Assert.Equal(checkpointed.ProcessId, Assert.Single(api.CallsOf("restore")).ProcessId);
        Assert.Equal(Pids, api.CallsOf("unlock").Select(c => c.ProcessId).Order());
        AssertAllRunning(api, Pids);
    }

    [Fact]
    public async Task ProcessesWithoutCudaAreLeftAlone()
    {
        var api = new FakeCudaCheckpointApi(Pids);
        api.WithoutCuda.Add(102);

        var result = await new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options, CancellationToken.None);

        Assert.Equal(new[] { 101, 103 }, result.ProcessIds.Order());
        Assert.DoesNotContain(api.Calls, c => c.ProcessId == 102);
        Assert.Equal(CudaProcessState.Running, api.StateOf(102));
    }

    [Fact]
    public async Task NoGpuProcessesMeansNoDriverCalls()
    {
        var api = new FakeCudaCheckpointApi();

        var result = await new CudaCheckpointCoordinator(api).CheckpointAsync(Array.Empty<GpuProcess>(), Options, CancellationToken.None);

        Assert.Empty(result.ProcessIds);
        Assert.Empty(result.Timings.Phases);
        Assert.Empty(api.Calls);
    }

    [Fact]
    public async Task AProcessAlreadyLockedFailsTheCheckpointBeforeAnythingIsLocked()
    {
        var api = new FakeCudaCheckpointApi(Pids);
        api.SetState(103, CudaProcessState.Locked);

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CudaCheckpointCoordinator(api).CheckpointAsync(Tree(Pids), Options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaCheckpointFailed, e.ErrorId);
        Assert.Contains("103 (core-103) is Locked", e.Message);
        Assert.Empty(api.Calls);
    }

    [Fact]
    public async Task AFailingRestoreStillUnlocksTheOthersAndNamesThePidAndTheError()
    {
        var api = new FakeCudaCheckpointApi(Pids);
        var coordinator = new CudaCheckpointCoordinator(api);
        await coordinator.CheckpointAsync(Tree(Pids), Options, CancellationToken.None);
        api.Fail = (op, pid) => op == "restore" && pid == 102 ? CudaError("cuCheckpointProcessRestore", pid, 401, "CUDA_ERROR_ILLEGAL_STATE") : null;

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() => coordinator.RestoreAsync(Pids, null, Options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaRestoreFailed, e.ErrorId);
        Assert.Equal(102, e.Target);
        Assert.Contains("process 102 failed", e.Message);
        Assert.Contains("CUDA_ERROR_ILLEGAL_STATE", e.Message);
        Assert.Equal(new[] { 101, 103 }, api.CallsOf("unlock").Select(c => c.ProcessId).Order());
        AssertAllRunning(api, 101, 103);
        Assert.Equal(CudaProcessState.Checkpointed, api.StateOf(102));
    }

    [Fact]
    public async Task RestoringAProcessThatIsNotCheckpointedFailsBeforeAnyCall()
    {
        var api = new FakeCudaCheckpointApi(Pids);

        var e = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new CudaCheckpointCoordinator(api).RestoreAsync(Pids, null, Options, CancellationToken.None));

        Assert.Equal(ErrorIds.CudaRestoreFailed, e.ErrorId);
        Assert.Contains("Running", e.Message);
        Assert.Empty(api.Calls);
    }
}
