using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Gpu;

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

    /// <summary>This host's GPUs, or none when it has no driver (then a GPU checkpoint is reported incompatible).</summary>
    private static GpuSnapshot? TryReadGpus()
    {
        try
        {
            return GpuInventory.ForHost().Collect(Array.Empty<int>());
        }
        catch (CriuCheckpointException)
        {
            return null;
        }
    }

    protected override void ProcessRecord()
    {
        var host = Run(async (observer, token) =>
        {
            string criuVersion;
            try
            {
                criuVersion = (await CriuTool.LocateAsync(CriuPath, observer, token).ConfigureAwait(false)).Version.ToString();
            }
            catch (CriuCheckpointException)
            {
                criuVersion = "not found";
            }

            return HostInspector.Collect(criuVersion, string.Empty);
        });

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
                        var gpus = checkpoint.Manifest.Gpu is null ? null : TryReadGpus();
                        WriteObject(checkpoint with { CompatibilityIssues = Compatibility.Check(checkpoint.Manifest, host, gpus) });
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
