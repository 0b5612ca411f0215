namespace CriuCheckpoint.Core;

/// <summary>
/// Broad classes of failure; the cmdlet layer maps each to the PowerShell ErrorCategory of the same name,
/// so the services stay free of System.Management.Automation and testable from plain xunit.
/// </summary>
public enum FailureKind
{
    InvalidArgument,
    ObjectNotFound,
    NotInstalled,
    ResourceUnavailable,
    ResourceExists,
    OperationTimeout,
    OperationStopped,
    InvalidOperation,
    InvalidData,
    PermissionDenied,
    ConnectionError,
    ProtocolError,
    NotImplemented,
}

/// <summary>A failure with a stable ErrorId that the cmdlets turn into an ErrorRecord.</summary>
public class CriuCheckpointException : Exception
{
    public CriuCheckpointException(string errorId, FailureKind kind, string message, object? target = null, Exception? inner = null, string? details = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
        Details = details;
    }

    public string ErrorId { get; }

    public FailureKind Kind { get; }

    public object? Target { get; }

    /// <summary>Evidence that explains the failure (an engine log tail, CRIU log lines), shown below the message.</summary>
    public string? Details { get; }

    public override string ToString() => Details is null ? base.ToString() : $"{base.ToString()}{Environment.NewLine}{Details}";
}
