using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Deletes checkpoints. Engines already restored from them are not affected.</summary>
[Cmdlet(VerbsCommon.Remove, "EngineCheckpoint", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByPath)]
[OutputType(typeof(void))]
public sealed class RemoveEngineCheckpointCommand : CheckpointCmdlet
{
    protected override void ProcessRecord()
    {
        foreach (var path in GivenPaths())
        {
            try
            {
                if (ShouldProcess(Describe(path), "Remove"))
                {
                    CheckpointStore.Remove(path);
                    WriteVerbose($"Removed {path}.");
                }
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }

    /// <summary>A checkpoint that cannot be opened (damaged, or of another manifest schema) can still be removed.</summary>
    private static string Describe(string path)
    {
        try
        {
            var checkpoint = CheckpointStore.Open(path);
            return $"checkpoint {checkpoint.Path} ({checkpoint.Backend} {checkpoint.Model}, {checkpoint.SizeBytes >> 20} MiB)";
        }
        catch (CriuCheckpointException e) when (e.ErrorId is ErrorIds.CheckpointCorrupt or ErrorIds.CheckpointIncompatible
            && File.Exists(CheckpointStore.ManifestPath(path)))
        {
            return $"checkpoint {path} ({e.ErrorId}: it cannot be opened)";
        }
    }
}
