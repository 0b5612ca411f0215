using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the checkpoints of a store (or reads one checkpoint directory), with their compatibility with this host.</summary>
[Cmdlet(VerbsCommon.Get, "EngineCheckpoint", DefaultParameterSetName = ByPath)]
[OutputType(typeof(EngineCheckpoint))]
public sealed class GetEngineCheckpointCommand : CheckpointCmdlet
{
    [Parameter]
    [ArgumentCompleter(typeof(ConfigHashCompleter))]
    [ValidateNotNullOrEmpty]
    public string? ConfigHash { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CriuPath { get; set; }

    protected override void ProcessRecord()
    {
        var host = Run((_, token) => HostComparison.ForHostAsync(Services, CriuPath, token));

        foreach (var path in GivenPaths())
        {
            var directories = CheckpointLocator.Directories(path);
            if (directories.Count == 0 && !Directory.Exists(path))
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
