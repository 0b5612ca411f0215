using System.Collections.Concurrent;
using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Microsoft.PowerShell.Commands;

namespace CriuCheckpoint.Commands;

/// <summary>
/// What every cmdlet of the module shares: a cancellation token cancelled by Ctrl+C (StopProcessing), services run
/// off the pipeline thread while the pipeline thread alone writes their progress, verbose and warning reports and
/// the objects they output (one queue, drained only by the pipeline thread), and service failures turned into
/// ErrorRecords with stable ErrorIds.
/// </summary>
public abstract class CriuCheckpointCmdlet : PSCmdlet, IDisposable
{
    /// <summary>The parameter set of the cmdlets that take engines by -Engine: objects, names or ids.</summary>
    protected const string ByEngine = "Engine";

    /// <summary>The parameter set of the cmdlets that take engines by -Id, with wildcards.</summary>
    protected const string ById = "Id";

    private readonly CancellationTokenSource cancellation = new();
    private readonly BlockingCollection<Action> reports = new();
    private readonly Dictionary<string, int> activityIds = new();
    private CheckpointServices? services;
    private readonly IOperationObserver observer;

    protected CriuCheckpointCmdlet() => observer = new QueuedObserver(this);

    protected CancellationToken CancellationToken => cancellation.Token;

    private protected EngineRegistry Registry { get; } = EngineRegistry.Default;

    /// <summary>What save and restore reach outside this process, made once per cmdlet call.</summary>
    private protected CheckpointServices Services => services ??= CheckpointServices.ForHost(Registry, observer);

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
            reports.Dispose();
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
        try
        {
            var task = Task.Run(() => work(observer, CancellationToken), CancellationToken);
            WriteReportsUntil(task);
            return task.GetAwaiter().GetResult();
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

    /// <summary>Queues an object for the pipeline: work running off the pipeline thread outputs through this.</summary>
    private protected void PostObject(object output) => Post(() => WriteObject(output));

    /// <summary>Queues a failure of work running off the pipeline thread, written as a non-terminating error.</summary>
    private protected void PostFailure(CriuCheckpointException failure) => Post(() => WriteFailure(failure));

    /// <summary>Writes what has been queued so far and returns without waiting for more.</summary>
    private protected void WriteQueued()
    {
        while (reports.TryTake(out var report))
        {
            report();
        }
    }

    private void WriteReportsUntil(Task task)
    {
        var ended = false;
        task.ContinueWith(_ => Post(() => ended = true), TaskScheduler.Default);
        var stopped = false;
        while (!ended)
        {
            try
            {
                reports.Take()();
            }
            catch (PipelineStoppedException)
            {
                // Ctrl+C: streams are closed, but the service is still cleaning up (resuming an engine, killing
                // a half-started one); wait for it so nothing is left behind when the pipeline stops.
                stopped = true;
            }
        }

        if (stopped)
        {
            throw new PipelineStoppedException();
        }
    }

    private void Post(Action report)
    {
        try
        {
            reports.Add(report);
        }
        catch (ObjectDisposedException)
        {
            // The cmdlet is gone: a late report has no stream left to go to.
        }
    }

    /// <summary>
    /// The argument that names the engines of this call, -Engine or, in the Id parameter set, -Id, with what its
    /// texts are compared with.
    /// </summary>
    private protected (T Identity, EngineKey Key) GivenEngine<T>(T engine, T id) =>
        ParameterSetName == ById ? (id, EngineKey.Id) : (engine, EngineKey.NameOrId);

    /// <summary>
    /// The engines that -Engine or -Id arguments name, each argument resolved on its own and each engine given once:
    /// one that names no engine is written as a non-terminating EngineNotFound error and the others go on.
    /// </summary>
    private protected IEnumerable<EngineInfo> ResolveEngines(IEnumerable<EngineIdentity> identities, EngineKey key)
    {
        var resolver = new EngineResolver(Registry);
        var given = new HashSet<string>(StringComparer.Ordinal);
        foreach (var identity in identities)
        {
            IReadOnlyList<EngineInfo> engines;
            try
            {
                engines = resolver.Resolve(identity, key);
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
                continue;
            }

            foreach (var engine in engines.Where(e => given.Add(e.Id)))
            {
                yield return engine;
            }
        }
    }

    /// <summary>The one engine an -Engine or -Id argument names; null, with the error written, when it names none or several.</summary>
    private protected EngineInfo? ResolveEngine(EngineIdentity identity, EngineKey key)
    {
        try
        {
            return new EngineResolver(Registry).ResolveOne(identity, key);
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
            return null;
        }
    }

    /// <summary>
    /// The file system paths that a -Path argument (wildcards expanded) or a -LiteralPath argument names. A path
    /// without wildcards that names nothing is kept as written, for the cmdlet to report as it reports anything
    /// missing; a pattern that matches nothing gives nothing; a path of another provider is written as a
    /// CheckpointNotFound error.
    /// </summary>
    private protected IReadOnlyList<string> FileSystemPaths(string path, bool literal)
    {
        ProviderInfo provider;
        IReadOnlyList<string> resolved;
        try
        {
            resolved = literal
                ? new[] { SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out provider, out _) }
                : SessionState.Path.GetResolvedProviderPathFromPSPath(path, out provider);
        }
        catch (ItemNotFoundException)
        {
            return FileSystemPaths(path, literal: true);
        }

        if (provider.ImplementingType != typeof(FileSystemProvider))
        {
            WritePathFailure(new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.InvalidArgument,
                $"{path} is a path of the {provider.Name} provider; checkpoints and their archives are files of the file system.", path));
            return Array.Empty<string>();
        }

        return resolved;
    }

    /// <summary>Writes the error of a path outside the file system; a cmdlet that sums up its inputs counts it.</summary>
    private protected virtual void WritePathFailure(CriuCheckpointException failure) => WriteFailure(failure);

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

    /// <summary>
    /// A compiled cmdlet given -Debug without -Verbose gets Inquire as its VerbosePreference, so PowerShell would stop at
    /// every verbose message and ask; then they go to the debug stream, which -Debug shows without asking.
    /// </summary>
    protected new void WriteVerbose(string text)
    {
        var bound = MyInvocation.BoundParameters;
        if (bound.TryGetValue("Debug", out var debug) && debug is SwitchParameter { IsPresent: true } && !bound.ContainsKey("Verbose"))
        {
            WriteDebug(text);
        }
        else
        {
            base.WriteVerbose(text);
        }
    }

    private void Progress(ProgressReport report)
    {
        WriteProgress(new ProgressRecord(ActivityId(report.Activity), report.Activity, string.IsNullOrEmpty(report.Status) ? report.Activity : report.Status)
        {
            PercentComplete = Math.Clamp(report.PercentComplete, 0, 100),
            ParentActivityId = report.ParentActivity is null ? -1 : ActivityId(report.ParentActivity),
            SecondsRemaining = report.Remaining is { } remaining ? (int)Math.Ceiling(remaining.TotalSeconds) : -1,
        });
    }

    private int ActivityId(string activity)
    {
        if (!activityIds.TryGetValue(activity, out var id))
        {
            id = activityIds.Count + 1;
            activityIds[activity] = id;
        }

        return id;
    }

    /// <summary>Marks every progress bar this cmdlet opened as completed, nested ones first, so none lingers in the host.</summary>
    protected void CompleteProgress()
    {
        foreach (var (activity, id) in activityIds.OrderByDescending(pair => pair.Value))
        {
            WriteProgress(new ProgressRecord(id, activity, "Completed") { RecordType = ProgressRecordType.Completed });
        }

        activityIds.Clear();
    }

    private sealed class QueuedObserver : IOperationObserver
    {
        private readonly CriuCheckpointCmdlet cmdlet;

        public QueuedObserver(CriuCheckpointCmdlet cmdlet) => this.cmdlet = cmdlet;

        public void Progress(ProgressReport report) => cmdlet.Post(() => cmdlet.Progress(report));

        public void Verbose(string message) => cmdlet.Post(() => cmdlet.WriteVerbose(message));

        public void Warning(string message) => cmdlet.Post(() => cmdlet.WriteWarning(message));

        public void Debug(string message) => cmdlet.Post(() => cmdlet.WriteDebug(message));
    }
}
