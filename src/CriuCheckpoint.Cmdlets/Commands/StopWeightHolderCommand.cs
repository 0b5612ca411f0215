using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Stops weight holders by PID and waits until the driver has their GPU memory back. Engines that mapped a holder's weights
/// keep them mapped: the memory goes back to the driver when the last of them releases it.
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "WeightHolder", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(WeightHolder))]
public sealed class StopWeightHolderCommand : WeightHoldersCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByName)]
    [ArgumentCompleter(typeof(WeightHolderNameCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Id { get; set; } = Array.Empty<string>();

    /// <summary>Seconds the holder gets to free its memory and exit after SIGTERM before SIGKILL.</summary>
    [Parameter]
    [ValidateRange(0, 3600)]
    public int TimeoutSec { get; set; } = 10;

    /// <summary>Outputs each stopped holder (State = Exited).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var holder in Matching(ParameterSetName == ById ? Id : Name, ParameterSetName == ById).ToArray())
        {
            if (!ShouldProcess($"weight holder {holder.Name} ({holder.Id}, PID {holder.ProcessId}, GPU {holder.GpuIndex})", "Stop"))
            {
                continue;
            }

            try
            {
                Run((observer, token) => new WeightHolderStopper(Holders, observer, gpuMemory: new GpuMemoryWatch(new NvmlReader(), ProcFs.Host))
                    .StopAsync(holder.Record, TimeSpan.FromSeconds(TimeoutSec), token));
                if (PassThru)
                {
                    WriteObject(holder with { State = WeightHolderState.Exited });
                }
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }
}
