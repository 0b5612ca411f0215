using System.Collections.Concurrent;
using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// What every cmdlet of the module shares: a cancellation token cancelled by Ctrl+C (StopProcessing), services run
/// off the pipeline thread while the pipeline thread alone writes their progress, verbose and warning reports,
/// and service failures turned into ErrorRecords with stable ErrorIds.
/// </summary>
public abstract class CriuCheckpointCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource cancellation = new();
    private readonly Dictionary<string, int> activityIds = new();

    protected CancellationToken CancellationToken => cancellation.Token;

    private protected EngineRegistry Registry { get; } = EngineRegistry.Default;

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            cancellation.Dispose();
        }
    }

    protected override void StopProcessing() => cancellation.Cancel();

    protected override void EndProcessing() => CompleteProgress();

    /// <summary>
    /// Runs a service call on the thread pool and pumps its reports onto the pipeline thread until it ends.
    /// Returns its result; a service failure becomes a terminating or non-terminating error as asked.
    /// </summary>
    private protected T Run<T>(Func<IOperationObserver, CancellationToken, Task<T>> work)
    {
        using var queue = new BlockingCollection<Action>();
        try
        {
            var observer = new QueuedObserver(queue, this);
            var task = Task.Run(() => work(observer, CancellationToken), CancellationToken);
            task.ContinueWith(_ => queue.CompleteAdding(), TaskScheduler.Default);
            var stopping = false;
            foreach (var report in queue.GetConsumingEnumerable())
            {
                try
                {
                    if (!stopping)
                    {
                        report();
                    }
                }
                catch (PipelineStoppedException)
                {
                    // Ctrl+C: streams are closed, but the service is still cleaning up (resuming an engine, killing
                    // a half-started one); wait for it so nothing is left behind when the pipeline stops.
                    stopping = true;
                }
            }

            return stopping ? throw new PipelineStoppedException() : task.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (CancellationToken.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    private protected void Run(Func<IOperationObserver, CancellationToken, Task> work) =>
        Run<bool>(async (observer, token) =>
        {
            await work(observer, token).ConfigureAwait(false);
            return true;
        });

    /// <summary>Writes a service failure as a non-terminating error.</summary>
    protected void WriteFailure(CriuCheckpointException failure) => WriteError(ToErrorRecord(failure));

    /// <summary>Throws a service failure as a terminating error.</summary>
    protected void ThrowFailure(CriuCheckpointException failure) => ThrowTerminatingError(ToErrorRecord(failure));

    public static ErrorRecord ToErrorRecord(CriuCheckpointException failure)
    {
        var category = Enum.TryParse<ErrorCategory>(failure.Kind.ToString(), out var parsed) ? parsed : ErrorCategory.NotSpecified;
        var record = new ErrorRecord(failure, failure.ErrorId, category, failure.Target);
        var message = string.IsNullOrWhiteSpace(failure.Details)
            ? failure.Message
            : $"{failure.Message}{Environment.NewLine}{failure.Details.TrimEnd()}";
        record.ErrorDetails = new ErrorDetails(message);
        return record;
    }

    protected void WriteTimings(string what, PhaseTimings timings) => WriteVerbose($"{what}: {timings}");

    private void Progress(string activity, string status, int percent)
    {
        if (!activityIds.TryGetValue(activity, out var id))
        {
            id = activityIds.Count + 1;
            activityIds[activity] = id;
        }

        WriteProgress(new ProgressRecord(id, activity, string.IsNullOrEmpty(status) ? activity : status)
        {
            PercentComplete = Math.Clamp(percent, 0, 100),
        });
    }

    /// <summary>Marks every progress bar this cmdlet opened as completed, so none lingers in the host.</summary>
    protected void CompleteProgress()
    {
        foreach (var (activity, id) in activityIds)
        {
            WriteProgress(new ProgressRecord(id, activity, "Completed") { RecordType = ProgressRecordType.Completed });
        }

        activityIds.Clear();
    }

    private sealed class QueuedObserver : IOperationObserver
    {
        private readonly BlockingCollection<Action> queue;
        private readonly CriuCheckpointCmdlet cmdlet;

        public QueuedObserver(BlockingCollection<Action> queue, CriuCheckpointCmdlet cmdlet)
        {
            this.queue = queue;
            this.cmdlet = cmdlet;
        }

        public void Progress(string activity, string status, int percentComplete) =>
            Post(() => cmdlet.Progress(activity, status, percentComplete));

        public void Verbose(string message) => Post(() => cmdlet.WriteVerbose(message));

        public void Warning(string message) => Post(() => cmdlet.WriteWarning(message));

        private void Post(Action report)
        {
            try
            {
                queue.Add(report);
            }
            catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
            {
                // The operation has ended: a late report has no stream left to go to.
            }
        }
    }
}
