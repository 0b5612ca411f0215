namespace CriuCheckpoint.Core;

/// <summary>
/// What a long-running service reports while it works. Services call it from any thread; the cmdlet's
/// implementation queues each report so that only the pipeline thread writes to PowerShell's streams.
/// </summary>
internal interface IOperationObserver
{
    void Progress(ProgressReport report);

    void Verbose(string message);

    void Warning(string message);

    /// <summary>Every external command line, as it runs (-Debug).</summary>
    void Debug(string message);
}

/// <summary>One state of a progress bar: the bar is its activity, nested under its parent activity's bar when it has one.</summary>
internal sealed record ProgressReport(string Activity, string Status, int PercentComplete)
{
    public string? ParentActivity { get; init; }

    /// <summary>How long the activity is expected to take still; null when unknown.</summary>
    public TimeSpan? Remaining { get; init; }
}

internal static class OperationObserverExtensions
{
    public static void Progress(this IOperationObserver observer, string activity, string status, int percentComplete) =>
        observer.Progress(new ProgressReport(activity, status, percentComplete));

    /// <summary>Reports whose bars are nested under <paramref name="parentActivity"/>'s bar; the rest goes through unchanged.</summary>
    public static IOperationObserver Under(this IOperationObserver observer, string parentActivity) => new NestedObserver(observer, parentActivity);

    private sealed class NestedObserver : IOperationObserver
    {
        private readonly IOperationObserver inner;
        private readonly string parentActivity;

        public NestedObserver(IOperationObserver inner, string parentActivity)
        {
            this.inner = inner;
            this.parentActivity = parentActivity;
        }

        public void Progress(ProgressReport report) => inner.Progress(report.ParentActivity is null ? report with { ParentActivity = parentActivity } : report);

        public void Verbose(string message) => inner.Verbose(message);

        public void Warning(string message) => inner.Warning(message);

        public void Debug(string message) => inner.Debug(message);
    }
}

internal sealed class NullObserver : IOperationObserver
{
    public static NullObserver Instance { get; } = new();

    public void Progress(ProgressReport report)
    {
    }

    public void Verbose(string message)
    {
    }

    public void Warning(string message)
    {
    }

    public void Debug(string message)
    {
    }
}
