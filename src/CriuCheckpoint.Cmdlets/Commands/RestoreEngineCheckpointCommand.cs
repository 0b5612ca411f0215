using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Restores engines from each checkpoint given, each replica in a fresh PID namespace, all replicas at once.</summary>
[Cmdlet(VerbsData.Restore, "EngineCheckpoint", SupportsShouldProcess = true, DefaultParameterSetName = ByPath)]
[OutputType(typeof(EngineInfo))]
public sealed class RestoreEngineCheckpointCommand : CheckpointCmdlet
{
    [Parameter]
    [ValidateRange(1, 64)]
    public int Count { get; set; } = 1;

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CriuPath { get; set; }

    /// <summary>The interpreter the restore runs (the namespace script) and records; never the checkpoint's.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? PythonPath { get; set; }

    /// <summary>Skips the hashes of the images, for stores the user trusts; sizes and ownership are still checked.</summary>
    [Parameter]
    public SwitchParameter SkipVerify { get; set; }

    /// <summary>criu reads the pages image with O_DIRECT and native AIO, past the page cache (criu 4.3 and newer).</summary>
    [Parameter]
    public SwitchParameter DirectImageRead { get; set; }

    /// <summary>GPU processes restored by the driver at once, per replica; 0 for all of them.</summary>
    [Parameter]
    [ValidateRange(0, 1024)]
    public int CudaThrottleLimit { get; set; }

    /// <summary>Restore into this host's PID namespace with the recorded PIDs (one replica, once the original has exited).</summary>
    [Parameter]
    public SwitchParameter HostPidNamespace { get; set; }

    /// <summary>Let each replica serve without answering the manifest's canary first.</summary>
    [Parameter]
    public SwitchParameter SkipCanary { get; set; }

    /// <summary>Read a -WeightsFromSource checkpoint's weights from the model's files even where a weight holder has them.</summary>
    [Parameter]
    public SwitchParameter SkipWeightHolder { get; set; }

    /// <summary>
    /// Leaves the model's weight files of a checkpoint saved with -WeightsFromSource unread until the engines read
    /// them: no prefetch into the page cache beside criu and the CUDA restore.
    /// </summary>
    [Parameter]
    public SwitchParameter SkipWeightPrefetch { get; set; }

    /// <summary>Seconds each replica may take to restore and resume before it is killed and reported.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 300;

    protected override void ProcessRecord()
    {
        foreach (var checkpoint in GivenCheckpoints())
        {
            Restore(checkpoint);
        }
    }

    private void Restore(EngineCheckpoint checkpoint)
    {
        try
        {
            if (!ShouldProcess($"{checkpoint.Path} ({Count} replica(s))", "Restore"))
            {
                return;
            }

            var options = new RestoreOptions
            {
                Count = Count,
                Name = Name,
                Force = Force,
                CriuPath = CriuPath,
                PythonPath = PythonPath,
                SkipVerify = SkipVerify,
                DirectImageReads = DirectImageRead,
                Timeout = TimeSpan.FromSeconds(TimeoutSec),
                CudaThrottleLimit = CudaThrottleLimit,
                HostPidNamespace = HostPidNamespace,
                SkipCanary = SkipCanary,
                UseWeightHolder = !SkipWeightHolder,
                SkipWeightPrefetch = SkipWeightPrefetch,
            };
            var outcomes = Run((observer, token) => new CheckpointRestorer(Services, observer).RestoreAsync(checkpoint, options, token));
            foreach (var outcome in outcomes)
            {
                if (outcome.Engine is { } engine)
                {
                    WriteTimings($"Engine {engine.Name} restored", engine.StartupTime!);
                    WriteObject(engine);
                }
                else
                {
                    WriteFailure(outcome.Failure!);
                }
            }
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }
}
