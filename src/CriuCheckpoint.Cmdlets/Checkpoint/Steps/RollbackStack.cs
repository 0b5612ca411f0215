using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The compensations of the steps that have run, newest on top. A failure unwinds them in reverse order, each one run
/// even when an earlier one failed, so a half-done save or restore leaves nothing behind: no locked GPU process, no
/// engine blocked on its FIFO, no staging or run directory.
/// </summary>
internal sealed class RollbackStack
{
    private readonly List<Compensation> compensations = new();

    /// <summary>What has been registered, newest first: the order an unwind runs them in.</summary>
    public IReadOnlyList<string> Pending => compensations.Select(c => c.Name).Reverse().ToArray();

    public void Push(string name, Func<Task> undo) => compensations.Add(new Compensation(name, undo));

    public void Push(string name, Action undo) => Push(name, () =>
    {
        undo();
        return Task.CompletedTask;
    });

    /// <summary>
    /// Runs one compensation now, as the normal way forward (resuming an engine that was saved with -LeaveRunning is
    /// what undoing its prepare does), and takes it off the stack. Its failure is the caller's.
    /// </summary>
    public async Task RunNowAsync(string name)
    {
        var index = compensations.FindLastIndex(c => c.Name == name);
        if (index < 0)
        {
            return;
        }

        var compensation = compensations[index];
        compensations.RemoveAt(index);
        await compensation.Undo().ConfigureAwait(false);
    }

    /// <summary>Forgets every compensation: the operation succeeded and what it made stays.</summary>
    public void Clear() => compensations.Clear();

    /// <summary>Runs every compensation, newest first; a failing one is reported and the rest still run.</summary>
    public async Task UnwindAsync(IOperationObserver observer)
    {
        while (compensations.Count > 0)
        {
            var compensation = compensations[^1];
            compensations.RemoveAt(compensations.Count - 1);
            try
            {
                await compensation.Undo().ConfigureAwait(false);
            }
            catch (Exception e) when (e is CriuCheckpointException or IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                observer.Warning($"Rolling back ({compensation.Name}) failed: {e.Message}");
            }
        }
    }

    private sealed record Compensation(string Name, Func<Task> Undo);
}
