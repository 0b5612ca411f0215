using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Verifies checkpoints without restoring them: the manifest, and every file's size and hash.</summary>
[Cmdlet(VerbsDiagnostic.Test, "EngineCheckpoint", DefaultParameterSetName = ByPath)]
[OutputType(typeof(CheckpointVerification), typeof(bool))]
public sealed class TestEngineCheckpointCommand : CheckpointCmdlet
{
    private bool allValid = true;

    /// <summary>Outputs one $true or $false for everything tested, for scripts.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var directory in CheckpointDirectories())
        {
            var result = Run((_, token) => CheckpointVerifier.TestAsync(directory, Services.Clock, token));
            allValid &= result.Valid;
            foreach (var problem in result.Problems)
            {
                WriteVerbose($"{result.Path}: {problem}");
            }

            if (!Quiet)
            {
                WriteObject(result);
            }
        }
    }

    private protected override void WritePathFailure(CriuCheckpointException failure)
    {
        allValid = false;
        base.WritePathFailure(failure);
    }

    protected override void EndProcessing()
    {
        if (Quiet)
        {
            WriteObject(allValid);
        }

        base.EndProcessing();
    }

    /// <summary>Each checkpoint named: a checkpoint directory itself, or every checkpoint of a store.</summary>
    private IEnumerable<string> CheckpointDirectories()
    {
        foreach (var path in GivenPaths())
        {
            var directories = CheckpointLocator.Directories(path);
            if (directories.Count == 0)
            {
                allValid = false;
                WriteFailure(new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.ObjectNotFound, $"No checkpoint or store with a checkpoint at {path}.", path));
            }

            foreach (var directory in directories)
            {
                yield return directory;
            }
        }
    }
}
