using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the checkpoints of a store (or reads one checkpoint directory), with their compatibility with this host.</summary>
[Cmdlet(VerbsCommon.Get, "EngineCheckpoint")]
[OutputType(typeof(EngineCheckpoint))]
public sealed class GetEngineCheckpointCommand : CriuCheckpointCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Store", "CheckpointStore")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ConfigHash { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CriuPath { get; set; }

    protected override void ProcessRecord()
    {
        var host = Run((_, token) => HostComparison.ForHostAsync(Services, CriuPath, token));

        foreach (var path in Path.Select(GetUnresolvedProviderPathFromPSPath))
        {
            var directories = File.Exists(CheckpointStore.ManifestPath(path)) ? new[] { path }
                : Directory.Exists(path) ? new CheckpointStore(path).CheckpointDirectories().ToArray()
                : null;
            if (directories is null)
            {
                WriteFailure(new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.ObjectNotFound, $"No checkpoint or store at {path}.", path));
                continue;
            }

            foreach (var directory in directories)
            {
                try
                {
                    var checkpoint = CheckpointStore.Open(directory);
                    if (ConfigHash is null || checkpoint.ConfigHash == ConfigHash)
                    {
                        WriteObject(host.Compare(checkpoint));
                    }
                }
                catch (CriuCheckpointException e)
                {
                    // One damaged checkpoint must not hide the others of the store.
                    WriteFailure(e);
                }
            }
        }
    }
}
