using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// Checkpoints and restores the CUDA state of an engine's GPU processes (docs/architecture.md, steps CheckpointCuda and RestoreCuda). Checkpoint: lock
/// every process, then checkpoint them all in parallel. Restore: restore them all in parallel, then unlock them all,
/// then check that each runs. Every lock comes before any checkpoint and every restore before any unlock because the
/// processes of one engine wait on each other: none may run CUDA work while a peer is half-way.
/// A checkpoint that fails or is cancelled, in any process at any point, restores and unlocks every process it
/// touched before it throws: no process is left locked.
/// </summary>
internal sealed class CudaCheckpointCoordinator
{
    public const string LockPhase = "cuda-lock";
    public const string CheckpointPhase = "cuda-checkpoint";
    public const string RestorePhase = "cuda-restore";
    public const string UnlockPhase = "cuda-unlock";

    // The driver enforces the lock timeout itself; the wait for its answer gets this much longer before giving up.
    private static readonly TimeSpan LockGrace = TimeSpan.FromSeconds(10);
    private static readonly IReadOnlyList<GpuPair> SameGpus = Array.Empty<GpuPair>();

    private readonly ICudaCheckpointApi api;
    private readonly IOperationObserver observer;

    public CudaCheckpointCoordinator(ICudaCheckpointApi api, IOperationObserver? observer = null)
    {
        this.api = api;
        this.observer = observer ?? NullObserver.Instance;
    }

    /// <summary>
    /// Locks, then checkpoints, every CUDA process among <paramref name="processes"/> (entries of one process on several
    /// GPUs count once; processes that hold NVIDIA devices without CUDA are skipped). Throws CudaLockTimeout or
    /// CudaCheckpointFailed naming the process and the CUDA error after rolling every process back, and
    /// OperationCanceledException after rolling back when cancelled.
    /// </summary>
    public async Task<CudaCheckpointResult> CheckpointAsync(IReadOnlyList<GpuProcess> processes, CudaCheckpointOptions options, CancellationToken cancellationToken)
    {
        var timings = new PhaseTimings();
        var total = Stopwatch.StartNew();
        var targets = SelectCudaProcesses(processes);
        if (targets.Count == 0)
        {
            return new CudaCheckpointResult(Array.Empty<int>(), 0, timings);
        }

        try
        {
            await RunPhaseAsync(LockPhase, targets, target =>
            {
                api.Lock(target.ProcessId, options.LockTimeout);
                target.State = CudaProcessState.Locked;
            }, options.LockTimeout + LockGrace, options, timings, cancellationToken).ConfigureAwait(false);
            await RunPhaseAsync(CheckpointPhase, targets, target =>
            {
                api.Checkpoint(target.ProcessId);
                target.State = CudaProcessState.Checkpointed;
                ExpectState(target, CudaProcessState.Checkpointed, "cuCheckpointProcessCheckpoint");
            }, options.CheckpointTimeout, options, timings, cancellationToken).ConfigureAwait(false);
        }
        catch (PhaseFailedException failed)
        {
            var problems = await RollBackAsync(targets, options).ConfigureAwait(false);
            throw CheckpointFailure(failed, targets, problems);
        }
        catch (OperationCanceledException)
        {
            foreach (var problem in await RollBackAsync(targets, options).ConfigureAwait(false))
            {
                observer.Warning($"After the cancelled CUDA checkpoint: {problem}");
            }

            throw;
        }

        timings.Total = total.Elapsed;
        var bytes = targets.Sum(t => t.GpuBytes);
        observer.Verbose(string.Create(CultureInfo.InvariantCulture,
            $"CUDA checkpoint of {targets.Count} processes ({bytes / 1e9:0.00} GB of GPU memory): {timings}."));
        return new CudaCheckpointResult(targets.Select(t => t.ProcessId).ToArray(), bytes, timings);
    }

    /// <summary>
    /// Restores every process (all Checkpointed) onto the GPUs of <paramref name="gpuPairs"/> (none: where it was
    /// checkpointed), then unlocks them all and checks that each runs. Whatever fails, every process that was restored
    /// is unlocked before CudaRestoreFailed names the process and the CUDA error. Cancelled, it starts no more restores,
    /// unlocks what it restored and throws OperationCanceledException: pass CancellationToken.None where the processes
    /// must run again (undoing a save).
    /// </summary>
    public async Task<CudaRestoreResult> RestoreAsync(IReadOnlyList<int> processIds, IReadOnlyList<GpuPair>? gpuPairs, CudaCheckpointOptions options, CancellationToken cancellationToken)
    {
        var timings = new PhaseTimings();
        var total = Stopwatch.StartNew();
        var targets = processIds.Distinct().Select(pid => new Target(pid, null, 0)).ToList();
        foreach (var target in targets)
        {
            var state = QueryState(target.ProcessId);
            if (state != CudaProcessState.Checkpointed)
            {
                throw new CriuCheckpointException(ErrorIds.CudaRestoreFailed, FailureKind.InvalidOperation,
                    $"Process {target} has no CUDA checkpoint to restore: {(state is null ? "the driver does not know it as a CUDA process" : $"the driver reports it {state}")}.",
                    target.ProcessId);
            }

            target.State = CudaProcessState.Checkpointed;
        }

        var pairs = gpuPairs ?? SameGpus;
        var failures = new List<CallFailure>();
        failures.AddRange(await RunCallsAsync(targets, target =>
        {
            api.Restore(target.ProcessId, pairs);
            target.State = CudaProcessState.Locked;
        }, options.RestoreTimeout, options, cancellationToken, timings, RestorePhase).ConfigureAwait(false));
        await SettleAsync(targets, options.OverrunGrace).ConfigureAwait(false);

        // Restored processes are unlocked whatever else happened, cancellation included.
        failures.AddRange(await RunCallsAsync(targets.Where(t => t.State == CudaProcessState.Locked).ToArray(), target =>
        {
            api.Unlock(target.ProcessId);
            target.State = CudaProcessState.Running;
        }, options.UnlockTimeout, options, CancellationToken.None, timings, UnlockPhase).ConfigureAwait(false));

        if (failures.Count > 0)
        {
            throw RestoreFailure(failures, targets);
        }

        cancellationToken.ThrowIfCancellationRequested();
        var notRunning = targets.Where(t => QueryState(t.ProcessId) != CudaProcessState.Running).ToArray();
        if (notRunning.Length > 0)
        {
            throw new CriuCheckpointException(ErrorIds.CudaRestoreFailed, FailureKind.InvalidOperation,
                $"After restore and unlock, process {notRunning[0].ProcessId} is {QueryState(notRunning[0].ProcessId)?.ToString() ?? "unknown to the driver"}, not Running.",
                notRunning[0].ProcessId, details: Outcomes(targets));
        }

        timings.Total = total.Elapsed;
        observer.Verbose($"CUDA restore of {targets.Count} processes{(pairs.Count > 0 ? $" onto {string.Join(", ", pairs)}" : string.Empty)}: {timings}.");
        return new CudaRestoreResult(targets.Select(t => t.ProcessId).ToArray(), timings);
    }

    /// <summary>The processes to checkpoint, one per PID; fails before anything is touched when one cannot be.</summary>
    private List<Target> SelectCudaProcesses(IReadOnlyList<GpuProcess> processes)
    {
        var targets = new List<Target>();
        foreach (var process in processes.GroupBy(p => p.ProcessId))
        {
            var first = process.First();
            var target = new Target(first.ProcessId, first.Name, process.Sum(p => p.GpuMemoryBytes));
            try
            {
                if (api.GetRestoreThreadId(target.ProcessId) is null)
                {
                    observer.Verbose($"Process {target} holds NVIDIA devices but has not initialised CUDA: nothing to checkpoint.");
                    continue;
                }

                target.State = api.GetState(target.ProcessId);
            }
            catch (CudaCallException e)
            {
                throw new CriuCheckpointException(ErrorIds.CudaCheckpointFailed, FailureKind.InvalidOperation,
                    $"The driver cannot tell the CUDA state of process {target}: {e.Message} Nothing was locked.", target.ProcessId, e);
            }

            if (target.State != CudaProcessState.Running)
            {
                throw new CriuCheckpointException(ErrorIds.CudaCheckpointFailed, FailureKind.InvalidOperation,
                    $"Process {target} is {target.State}, not Running: another checkpoint has it, or left it so. Nothing was locked.", target.ProcessId);
            }

            targets.Add(target);
        }

        return targets;
    }

    /// <summary>One phase over every target: timed, reported, and thrown as a whole when any call failed or it was cancelled.</summary>
    private async Task RunPhaseAsync(string phase, IReadOnlyList<Target> targets, Action<Target> call, TimeSpan timeout, CudaCheckpointOptions options, PhaseTimings timings, CancellationToken cancellationToken)
    {
        var failures = await RunCallsAsync(targets, call, timeout, options, cancellationToken, timings, phase).ConfigureAwait(false);
        if (failures.Count > 0)
        {
            throw new PhaseFailedException(phase, failures);
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// Calls the driver for every target at once (at most MaxParallelism), each on its own thread and bounded by
    /// <paramref name="timeout"/>, and returns the calls that failed. Cancellation starts no more calls, but those under
    /// way are awaited: a driver call cannot be interrupted, and what it did must be known to undo it.
    /// </summary>
    private async Task<IReadOnlyList<CallFailure>> RunCallsAsync(IReadOnlyList<Target> targets, Action<Target> call, TimeSpan timeout, CudaCheckpointOptions options, CancellationToken cancellationToken, PhaseTimings? timings = null, string? phase = null)
    {
        var failures = new ConcurrentBag<CallFailure>();
        var elapsed = Stopwatch.StartNew();
        using var gate = new SemaphoreSlim(options.MaxParallelism > 0 ? options.MaxParallelism : Math.Max(1, targets.Count));
        await Task.WhenAll(targets.Select(async target =>
        {
            try
            {
                await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                var duration = Stopwatch.StartNew();
                var running = Task.Factory.StartNew(() => call(target), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                target.InFlight = running;
                await running.WaitAsync(timeout, CancellationToken.None).ConfigureAwait(false);
                if (duration.Elapsed > timeout)
                {
                    // It answered, but late: the timer that should have cut it off ran late too (a busy thread pool).
                    failures.Add(new CallFailure(target, Overran(timeout)));
                }
            }
            catch (TimeoutException) when (target.InFlight is { IsCompleted: false })
            {
                failures.Add(new CallFailure(target, Overran(timeout)));
            }
            catch (Exception e)
            {
                // Whatever went wrong, the caller must know this process's call failed to undo it correctly.
                failures.Add(new CallFailure(target, e));
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);

        if (phase is not null && timings is not null)
        {
            timings.Add(phase, elapsed.Elapsed);
            observer.Verbose(string.Create(CultureInfo.InvariantCulture, $"{phase}: {targets.Count} processes in {elapsed.Elapsed.TotalSeconds:0.000} s."));
        }

        return failures.OrderBy(f => f.Target.ProcessId).ToArray();
    }

    private static TimeoutException Overran(TimeSpan timeout) =>
        new(string.Create(CultureInfo.InvariantCulture, $"the driver did not answer within {timeout.TotalSeconds:0.#} s"));

    /// <summary>
    /// Brings every target back to Running: restores the checkpointed ones, then unlocks the locked ones, trusting the
    /// driver's view of each over what was recorded. Never throws; returns what could not be undone.
    /// </summary>
    private async Task<IReadOnlyList<string>> RollBackAsync(IReadOnlyList<Target> targets, CudaCheckpointOptions options)
    {
        await SettleAsync(targets, options.OverrunGrace).ConfigureAwait(false);
        foreach (var target in targets)
        {
            target.State = QueryState(target.ProcessId) ?? target.State;
        }

        var failures = new List<CallFailure>();
        failures.AddRange(await RunCallsAsync(targets.Where(t => t.State == CudaProcessState.Checkpointed).ToArray(), target =>
        {
            api.Restore(target.ProcessId, SameGpus);
            target.State = CudaProcessState.Locked;
        }, options.RestoreTimeout, options, CancellationToken.None).ConfigureAwait(false));
        await SettleAsync(targets, options.OverrunGrace).ConfigureAwait(false);
        failures.AddRange(await RunCallsAsync(targets.Where(t => t.State == CudaProcessState.Locked).ToArray(), target =>
        {
            api.Unlock(target.ProcessId);
            target.State = CudaProcessState.Running;
        }, options.UnlockTimeout, options, CancellationToken.None).ConfigureAwait(false));

        var problems = failures.Select(f => $"undoing process {f.Target}: {Describe(f.Error)}").ToList();
        foreach (var target in targets)
        {
            var state = QueryState(target.ProcessId) ?? target.State;
            if (state != CudaProcessState.Running)
            {
                problems.Add($"process {target} is left {state}.");
            }
        }

        return problems;
    }

    /// <summary>Waits (at most <paramref name="limit"/>) for driver calls that overran their timeout: undoing a process mid-call is undefined.</summary>
    private static async Task SettleAsync(IReadOnlyList<Target> targets, TimeSpan limit)
    {
        var running = targets.Select(t => t.InFlight).OfType<Task>().Where(t => !t.IsCompleted).ToArray();
        if (running.Length > 0)
        {
            await Task.WhenAny(Task.WhenAll(running), Task.Delay(limit)).ConfigureAwait(false);
        }
    }

    /// <summary>The driver's state of the process, or null when it cannot say.</summary>
    private CudaProcessState? QueryState(int processId)
    {
        try
        {
            return api.GetState(processId);
        }
        catch (CudaCallException)
        {
            return null;
        }
    }

    private void ExpectState(Target target, CudaProcessState expected, string after)
    {
        var state = api.GetState(target.ProcessId);
        if (state != expected)
        {
            throw new InvalidOperationException($"{after} succeeded but the driver reports the process {state}, not {expected}");
        }
    }

    private static CriuCheckpointException CheckpointFailure(PhaseFailedException failed, IReadOnlyList<Target> targets, IReadOnlyList<string> problems)
    {
        var first = failed.Failures[0];
        var lockTimedOut = failed.Phase == LockPhase
            && first.Error is TimeoutException or CudaCallException { Result: CudaResult.NotReady };
        var outcome = problems.Count == 0
            ? $"All {targets.Count} GPU processes were restored and unlocked."
            : $"Rolling back failed: {string.Join(" ", problems)}";
        var message = lockTimedOut
            ? $"Locking CUDA in process {first.Target} timed out: {Describe(first.Error)}; a CUDA call of the process did not finish in time. {outcome}"
            : $"{(failed.Phase == LockPhase ? "Locking" : "Checkpointing")} CUDA in process {first.Target} failed: {Describe(first.Error)}. {outcome}";
        var details = string.Join(Environment.NewLine, failed.Failures.Select(f => $"{f.Target}: {Describe(f.Error)}").Concat(problems));
        return new CriuCheckpointException(
            lockTimedOut ? ErrorIds.CudaLockTimeout : ErrorIds.CudaCheckpointFailed,
            lockTimedOut || first.Error is TimeoutException ? FailureKind.OperationTimeout : FailureKind.InvalidOperation,
            message, first.Target.ProcessId, first.Error, details);
    }

    private CriuCheckpointException RestoreFailure(IReadOnlyList<CallFailure> failures, IReadOnlyList<Target> targets)
    {
        var first = failures[0];
        return new CriuCheckpointException(ErrorIds.CudaRestoreFailed,
            first.Error is TimeoutException ? FailureKind.OperationTimeout : FailureKind.InvalidOperation,
            $"Restoring CUDA in process {first.Target} failed: {Describe(first.Error)}. Every process that was restored has been unlocked.",
            first.Target.ProcessId, first.Error,
            string.Join(Environment.NewLine, failures.Select(f => $"{f.Target}: {Describe(f.Error)}").Append(Outcomes(targets))));
    }

    private string Outcomes(IReadOnlyList<Target> targets) =>
        string.Join(Environment.NewLine, targets.Select(t => $"{t}: {QueryState(t.ProcessId)?.ToString() ?? "unknown to the driver"}"));

    private static string Describe(Exception error) => error switch
    {
        CudaCallException call => $"{call.Function} returned {call.ResultName} ({call.Result})",
        _ => error.Message,
    };

    /// <summary>A process the coordinator works on, with what is known of its CUDA state and the driver call under way.</summary>
    private sealed class Target
    {
        private volatile CudaProcessState state = CudaProcessState.Running;

        public Target(int processId, string? name, long gpuBytes)
        {
            ProcessId = processId;
            Name = name;
            GpuBytes = gpuBytes;
        }

        public int ProcessId { get; }

        public string? Name { get; }

        public long GpuBytes { get; }

        public CudaProcessState State
        {
            get => state;
            set => state = value;
        }

        public Task? InFlight { get; set; }

        public override string ToString() =>
            string.IsNullOrEmpty(Name) ? ProcessId.ToString(CultureInfo.InvariantCulture) : $"{ProcessId} ({Name})";
    }

    private sealed record CallFailure(Target Target, Exception Error);

    private sealed class PhaseFailedException : Exception
    {
        public PhaseFailedException(string phase, IReadOnlyList<CallFailure> failures)
            : base($"{phase} failed in {failures.Count} processes.")
        {
            Phase = phase;
            Failures = failures;
        }

        public string Phase { get; }

        public IReadOnlyList<CallFailure> Failures { get; }
    }
}
