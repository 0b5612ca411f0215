using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Engine;

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
        var host = Run(async (_, token) =>
        {
            string criuVersion;
            try
            {
                criuVersion = (await CriuTool.LocateAsync(CriuPath, token).ConfigureAwait(false)).Version.ToString();
            }
            catch (CriuCheckpointException)
            {
                criuVersion = "not found";
            }

            return HostInspector.Collect(criuVersion, string.Empty);
        });

        foreach (var path in Path.Select(GetUnresolvedProviderPathFromPSPath))
        {
            try
            {
                var checkpoints = File.Exists(CheckpointStore.ManifestPath(path))
                    ? new[] { CheckpointStore.Open(path) }
                    : Directory.Exists(path) ? new CheckpointStore(path).List()
                    : throw new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.ObjectNotFound, $"No checkpoint or store at {path}.", path);
                foreach (var checkpoint in checkpoints.Where(c => ConfigHash is null || c.ConfigHash == ConfigHash))
                {
                    WriteObject(checkpoint with { CompatibilityIssues = Compatibility.Check(checkpoint.Manifest, host) });
                }
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }
}
