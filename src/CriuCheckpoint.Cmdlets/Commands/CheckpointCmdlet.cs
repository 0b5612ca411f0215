using System.Management.Automation;
using CriuCheckpoint.Checkpoint;

namespace CriuCheckpoint.Commands;

/// <summary>
/// A cmdlet that acts on one checkpoint at a time: an EngineCheckpoint from the pipeline, or a path to a checkpoint
/// directory or to a store holding exactly one.
/// </summary>
public abstract class CheckpointCmdlet : CriuCheckpointCmdlet
{
    protected const string ByCheckpoint = "Checkpoint";
    protected const string ByPath = "Path";

    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ByCheckpoint)]
    [ValidateNotNull]
    public EngineCheckpoint Checkpoint { get; set; } = null!;

    /// <summary>A checkpoint directory, or a store holding exactly one checkpoint.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByPath)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>The checkpoint given; throws CheckpointNotFound or CheckpointCorrupt for a path that holds none.</summary>
    private protected EngineCheckpoint SelectedCheckpoint() =>
        ParameterSetName == ByCheckpoint ? Checkpoint : CheckpointLocator.Open(GetUnresolvedProviderPathFromPSPath(Path));
}
