namespace CriuCheckpoint.Core;

/// <summary>
/// What a long-running service reports while it works. Services call it from any thread; the cmdlet's
/// implementation queues each report so that only the pipeline thread writes to PowerShell's streams.
/// </summary>
internal interface IOperationObserver
{
    void Progress(string activity, string status, int percentComplete);

    void Verbose(string message);

    void Warning(string message);
}

internal sealed class NullObserver : IOperationObserver
{
    public static NullObserver Instance { get; } = new();

    public void Progress(string activity, string status, int percentComplete)
    {
    }

    public void Verbose(string message)
    {
    }

    public void Warning(string message)
    {
    }
}
