using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Unpacks a checkpoint archive into a store: validated, verified and published atomically.</summary>
[Cmdlet(VerbsData.Import, "EngineCheckpoint", SupportsShouldProcess = true, DefaultParameterSetName = ByPath)]
[OutputType(typeof(EngineCheckpoint))]
public sealed class ImportEngineCheckpointCommand : CriuCheckpointCmdlet
{
    private const string ByPath = "Path";
    private const string ByLiteralPath = "LiteralPath";

    /// <summary>Archive files written by Export-EngineCheckpoint; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByPath)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Archive files, taken as they are written; FileInfo objects bind by FullName where they have no PSPath.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByLiteralPath)]
    [Alias("PSPath", "LP", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

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
        var archives = ParameterSetName == ByLiteralPath
            ? LiteralPath.SelectMany(path => FileSystemPaths(path, literal: true))
            : Path.SelectMany(path => FileSystemPaths(path, literal: false));
        foreach (var archive in archives)
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
