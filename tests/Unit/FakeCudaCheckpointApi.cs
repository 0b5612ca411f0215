using System.Diagnostics;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Tests;

/// <summary>
/// Stands in for the driver's checkpoint API: each process moves through the driver's states and refuses the calls the
/// driver refuses (CUDA_ERROR_ILLEGAL_STATE), every call is recorded with when it started and ended, and any call can
/// be made to fail, to take time, or to run a hook first (to press Ctrl+C at a chosen moment).
/// </summary>
internal sealed class FakeCudaCheckpointApi : ICudaCheckpointApi
{
    private readonly object gate = new();
    private readonly Dictionary<int, CudaProcessState> states = new();
    private readonly List<Call> calls = new();

    public FakeCudaCheckpointApi(params int[] cudaProcessIds)
    {
        foreach (var pid in cudaProcessIds)
        {
            states[pid] = CudaProcessState.Running;
        }
    }

    public string DriverCudaVersion => "13.0";

    /// <summary>Processes that hold NVIDIA devices but never initialised CUDA.</summary>
    public HashSet<int> WithoutCuda { get; } = new();

    /// <summary>Returns the exception a call ("lock", "checkpoint", "restore", "unlock") on a PID throws instead of succeeding.</summary>
    public Func<string, int, Exception?> Fail { get; set; } = (_, _) => null;

    /// <summary>How long a call takes.</summary>
    public Func<string, int, TimeSpan> Delay { get; set; } = (_, _) => TimeSpan.Zero;

    /// <summary>Runs as a call starts.</summary>
    public Action<string, int> OnCall { get; set; } = (_, _) => { };

    public IReadOnlyList<Call> Calls
    {
        get
        {
            lock (gate)
            {
                return calls.ToArray();
            }
        }
    }

    public IEnumerable<Call> CallsOf(string operation) => Calls.Where(c => c.Operation == operation);

    public CudaProcessState StateOf(int pid)
    {
        lock (gate)
        {
            return states[pid];
        }
    }

    public void SetState(int pid, CudaProcessState state)
    {
        lock (gate)
        {
            states[pid] = state;
        }
    }

    public void Lock(int processId, TimeSpan timeout) =>
        Transition("lock", "cuCheckpointProcessLock", processId, CudaProcessState.Running, CudaProcessState.Locked, null);

    public void Checkpoint(int processId) =>
        Transition("checkpoint", "cuCheckpointProcessCheckpoint", processId, CudaProcessState.Locked, CudaProcessState.Checkpointed, null);

    public void Restore(int processId, IReadOnlyList<GpuPair> gpuPairs) =>
        Transition("restore", "cuCheckpointProcessRestore", processId, CudaProcessState.Checkpointed, CudaProcessState.Locked, gpuPairs);

    public void Unlock(int processId) =>
        Transition("unlock", "cuCheckpointProcessUnlock", processId, CudaProcessState.Locked, CudaProcessState.Running, null);

    public CudaProcessState GetState(int processId)
    {
        lock (gate)
        {
            return states.TryGetValue(processId, out var state) && !WithoutCuda.Contains(processId)
                ? state
                : throw new CudaCallException("cuCheckpointProcessGetState", processId, CudaResult.InvalidValue, "CUDA_ERROR_INVALID_VALUE");
        }
    }

    public int? GetRestoreThreadId(int processId) => WithoutCuda.Contains(processId) ? null : processId + 100_000;

    private void Transition(string operation, string function, int pid, CudaProcessState from, CudaProcessState to, IReadOnlyList<GpuPair>? pairs)
    {
        var started = Stopwatch.GetTimestamp();
        OnCall(operation, pid);
        Thread.Sleep(Delay(operation, pid));
        var failure = Fail(operation, pid);
        lock (gate)
        {
            calls.Add(new Call(operation, pid, started, Stopwatch.GetTimestamp(), pairs, failure is null));
            if (failure is not null)
            {
                throw failure;
            }

            if (states[pid] != from)
            {
                throw new CudaCallException(function, pid, 401, "CUDA_ERROR_ILLEGAL_STATE");
            }

            states[pid] = to;
        }
    }

    public sealed record Call(string Operation, int ProcessId, long Started, long Ended, IReadOnlyList<GpuPair>? GpuPairs, bool Succeeded);
}
