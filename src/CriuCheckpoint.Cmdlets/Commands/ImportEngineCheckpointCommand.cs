using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Unpacks a checkpoint archive into a store: validated, verified and published atomically.</summary>
[Cmdlet(VerbsData.Import, "EngineCheckpoint", SupportsShouldProcess = true)]
[OutputType(typeof(EngineCheckpoint))]
public sealed class ImportEngineCheckpointCommand : CriuCheckpointCmdlet
{
    /// <summary>Archive files written by Export-EngineCheckpoint.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, Position = 1)]
    [Alias("CheckpointStore")]
    [ValidateNotNullOrEmpty]
    public string Store { get; set; } = string.Empty;

    /// <summary>Imports a checkpoint that does not fit this host, with a warning for each difference.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        var store = new CheckpointStore(GetUnresolvedProviderPathFromPSPath(Store));
        foreach (var archive in Path.Select(GetUnresolvedProviderPathFromPSPath))
        {
            if (!File.Exists(archive))
            {
                WriteFailure(new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.ObjectNotFound, $"No checkpoint archive at {archive}.", archive));
                continue;
            }

            if (!ShouldProcess($"{archive} into {store.Path}", "Import"))
            {
                continue;
            }

            try
            {
                WriteObject(Run((observer, token) => new CheckpointImporter(Services, observer).ImportAsync(archive, store, Force, token)));
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }
}
