using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>What to ask of an engine before its dump; <paramref name="Canary"/>: answer the canary once drained.</summary>
internal sealed record PrepareRequest(TimeSpan DrainTimeout, bool AbortInFlight, bool KeepCaches, bool Canary = true);

/// <summary>
/// The engine as save and restore drive it: over its link, its run directory and /proc. An interface so every step
/// and every rollback path of save and restore is testable with a fake engine.
/// </summary>
internal interface IEngineControl
{
    bool IsAlive(EngineRecord record);

    /// <summary>Alive, and not serving: blocked on its resume FIFO (prepared, or restored and waiting).</summary>
    bool IsPrepared(EngineRecord record);

    /// <summary>Throws EngineNotRunning or EngineNotReady unless the engine serves now.</summary>
    void EnsureServing(EngineRecord record);

    /// <summary>Throws EngineNameInUse when a running engine has that name.</summary>
    void EnsureNameFree(string? name);

    /// <summary>Asks a serving engine to prepare and waits until it blocks on its FIFO; its canary and inventory.</summary>
    Task<PrepareOutcome> PrepareAsync(EngineRecord record, PrepareRequest request, CancellationToken cancellationToken);

    /// <summary>Waits until the engine reads its resume FIFO (ResumeFailed if it exits first or the timeout passes).</summary>
    Task<IResumeFifo> OpenResumeFifoAsync(EngineRecord record, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Resumes an engine that reads its FIFO and waits until it serves, which it does only once its canary matched
    /// (CanaryMismatch otherwise); closes the FIFO. Returns its ready.json.
    /// </summary>
    Task<ReadyInfo> ResumeThroughAsync(EngineRecord record, IResumeFifo fifo, ResumeTerms terms, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Asks the engine itself how it is (hello).</summary>
    Task<EngineInfo> DescribeAsync(EngineRecord record, TimeSpan timeout, CancellationToken cancellationToken);

    ProcessTree Tree(int rootProcessId);

    Task WaitForExitAsync(ProcessTree tree, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Kills whatever the record's session still runs, by PID, and removes its run directory.</summary>
    void Abandon(EngineRecord record);

    /// <summary>Removes the record of an engine that has ended.</summary>
    void Forget(EngineRecord record);
}

/// <summary>The engines of this host.</summary>
internal sealed class EngineControl : IEngineControl
{
    private readonly EngineRegistry registry;
    private readonly ProcFs procFs;
    private readonly EngineInspector inspector;
    private readonly EngineResumer resumer;

    public EngineControl(EngineRegistry registry, ProcFs procFs)
    {
        this.registry = registry;
        this.procFs = procFs;
        inspector = new EngineInspector(registry, procFs);
        resumer = new EngineResumer(procFs);
    }

    public bool IsAlive(EngineRecord record) => inspector.IsAlive(record);

    public bool IsPrepared(EngineRecord record) => IsAlive(record) && !File.Exists(new RunDirectory(record.RunDirectory).ReadyFile);

    public void EnsureServing(EngineRecord record) => inspector.Connect(record).Dispose();

    public void EnsureNameFree(string? name) => inspector.EnsureNameFree(name);

    public async Task<PrepareOutcome> PrepareAsync(EngineRecord record, PrepareRequest request, CancellationToken cancellationToken)
    {
        using var link = inspector.Connect(record);
        return await resumer.PrepareAsync(record, link, request, cancellationToken).ConfigureAwait(false);
    }

    public Task<IResumeFifo> OpenResumeFifoAsync(EngineRecord record, TimeSpan timeout, CancellationToken cancellationToken) =>
        resumer.OpenFifoAsync(record, inspector.Liveness(record), timeout, cancellationToken);

    public Task<ReadyInfo> ResumeThroughAsync(EngineRecord record, IResumeFifo fifo, ResumeTerms terms, TimeSpan timeout, CancellationToken cancellationToken) =>
        resumer.ResumeThroughAsync(record, fifo, terms, inspector.Liveness(record), timeout, cancellationToken);

    public Task<EngineInfo> DescribeAsync(EngineRecord record, TimeSpan timeout, CancellationToken cancellationToken) =>
        inspector.DescribeAsync(record, probe: true, timeout, cancellationToken);

    public ProcessTree Tree(int rootProcessId) => ProcessTree.Discover(rootProcessId, procFs);

    public Task WaitForExitAsync(ProcessTree tree, TimeSpan timeout, CancellationToken cancellationToken) =>
        new ProcessTerminator(procFs).WaitForExitAsync(tree.Processes, timeout, cancellationToken);

    public void Abandon(EngineRecord record) => new EngineLauncher(registry, NullObserver.Instance, procFs).Abandon(record);

    public void Forget(EngineRecord record) => registry.Remove(record);
}
