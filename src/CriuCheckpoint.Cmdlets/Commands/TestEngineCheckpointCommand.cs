using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Verifies checkpoints without restoring them: the manifest, and every file's size and hash.</summary>
[Cmdlet(VerbsDiagnostic.Test, "EngineCheckpoint", DefaultParameterSetName = ByPath)]
[OutputType(typeof(CheckpointVerification), typeof(bool))]
public sealed class TestEngineCheckpointCommand : CriuCheckpointCmdlet
{
    private const string ByPath = "Path";
    private const string ByLiteralPath = "LiteralPath";
    private const string ByCheckpoint = "Checkpoint";
    private bool allValid = true;

    /// <summary>Checkpoint directories or stores; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByPath)]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByLiteralPath)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = ByCheckpoint)]
    [ValidateNotNull]
    public EngineCheckpoint[] Checkpoint { get; set; } = Array.Empty<EngineCheckpoint>();

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
        var paths = ParameterSetName switch
        {
            ByCheckpoint => Checkpoint.Select(c => c.Path).ToList(),
            ByLiteralPath => LiteralPath.Select(GetUnresolvedProviderPathFromPSPath).ToList(),
            _ => Path.SelectMany(Resolve).ToList(),
        };
        foreach (var path in paths)
        {
            var directories = File.Exists(CheckpointStore.ManifestPath(path)) ? new[] { path }
                : Directory.Exists(path) ? new CheckpointStore(path).CheckpointDirectories().ToArray()
                : Array.Empty<string>();
            if (directories.Length == 0)
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

    private IEnumerable<string> Resolve(string path)
    {
        try
        {
            return GetResolvedProviderPathFromPSPath(path, out _);
        }
        catch (ItemNotFoundException)
        {
            return new[] { GetUnresolvedProviderPathFromPSPath(path) };
        }
    }
}
