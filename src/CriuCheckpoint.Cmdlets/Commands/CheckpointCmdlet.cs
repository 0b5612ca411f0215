using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>
/// A cmdlet that acts on each checkpoint it is given: EngineCheckpoint objects (-Checkpoint, from the pipeline by
/// value), paths with wildcards (-Path) or literal paths (-LiteralPath, alias PSPath, so Get-ChildItem output binds).
/// What a folder that is no checkpoint means (a store) is the derived cmdlet's to say.
/// </summary>
public abstract class CheckpointCmdlet : CriuCheckpointCmdlet
{
    protected const string ByCheckpoint = "Checkpoint";
    protected const string ByPath = "Path";
    protected const string ByLiteralPath = "LiteralPath";

    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ByCheckpoint)]
    [ValidateNotNullOrEmpty]
    public EngineCheckpoint[] Checkpoint { get; set; } = Array.Empty<EngineCheckpoint>();

    /// <summary>Checkpoint directories or stores; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByPath)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Checkpoint directories or stores, taken as they are written.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByLiteralPath)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>
    /// The file system paths given: each checkpoint's own, each -Path with its wildcards expanded, each -LiteralPath as
    /// it is (see FileSystemPaths).
    /// </summary>
    private protected IEnumerable<string> GivenPaths() => ParameterSetName switch
    {
        ByCheckpoint => Checkpoint.Select(c => c.Path),
        ByLiteralPath => LiteralPath.SelectMany(path => FileSystemPaths(path, literal: true)),
        _ => Path.SelectMany(path => FileSystemPaths(path, literal: false)),
    };

    /// <summary>
    /// The checkpoints given: the objects as they are, each path read as a checkpoint directory or a store holding
    /// exactly one. A path that holds none, or several, is written as CheckpointNotFound and the others go on.
    /// </summary>
    private protected IEnumerable<EngineCheckpoint> GivenCheckpoints()
    {
        if (ParameterSetName == ByCheckpoint)
        {
            return Checkpoint;
        }

        return GivenPaths().Select(OpenOrWriteFailure).OfType<EngineCheckpoint>();
    }

    private EngineCheckpoint? OpenOrWriteFailure(string path)
    {
        try
        {
            return CheckpointLocator.Open(path);
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
            return null;
        }
    }
}
