namespace CriuCheckpoint.Native;

/// <summary>What went wrong below the module, so the layer above can name the cause with its own ErrorId.</summary>
internal enum NativeFailure
{
    /// <summary>A library or executable is not on this host.</summary>
    Missing,

    /// <summary>It is there but lacks what is needed (an export, a version).</summary>
    TooOld,

    /// <summary>A call or command ran and failed.</summary>
    Failed,

    /// <summary>A call or command did not finish in time.</summary>
    TimedOut,
}

/// <summary>
/// A failed library call, system call or helper command, naming it. Native code knows nothing of the module's
/// ErrorIds: the layer that called it maps the failure to one.
/// </summary>
internal sealed class NativeException : Exception
{
    public NativeException(NativeFailure failure, string source, string message, string? details = null)
        : base(message)
    {
        Failure = failure;
        Source = source;
        Details = details;
    }

    public NativeFailure Failure { get; }

    /// <summary>The library, function or executable that failed.</summary>
    public new string Source { get; }

    /// <summary>Output that explains the failure (a helper's standard error), when there is any.</summary>
    public string? Details { get; }

    /// <summary>The errno of a failed system call, 0 when there is none.</summary>
    public int ErrorNumber { get; init; }
}
