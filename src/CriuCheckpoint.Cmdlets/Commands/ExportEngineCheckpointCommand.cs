using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Writes each checkpoint given as one archive file (tar) that Import-EngineCheckpoint unpacks on another host.</summary>
[Cmdlet(VerbsData.Export, "EngineCheckpoint", SupportsShouldProcess = true, DefaultParameterSetName = ByPath)]
[OutputType(typeof(FileInfo))]
public sealed class ExportEngineCheckpointCommand : CheckpointCmdlet
{
    /// <summary>The archive file; an existing folder gets &lt;config-hash&gt;.tar inside it.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string DestinationPath { get; set; } = string.Empty;

    protected override void ProcessRecord()
    {
        foreach (var checkpoint in GivenCheckpoints())
        {
            Export(checkpoint);
        }
    }

    private void Export(EngineCheckpoint checkpoint)
    {
        try
        {
            var destination = GetUnresolvedProviderPathFromPSPath(DestinationPath);
            if (Directory.Exists(destination))
            {
                destination = System.IO.Path.Combine(destination, $"{checkpoint.ConfigHash}.tar");
            }

            if (!ShouldProcess($"{checkpoint.Path} to {destination}", "Export"))
            {
                return;
            }

            WriteObject(Run((observer, token) => new CheckpointExporter(Services, observer).ExportAsync(checkpoint.Path, destination, token)));
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }
}
