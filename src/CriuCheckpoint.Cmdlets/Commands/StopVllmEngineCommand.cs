using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Commands;

/// <summary>Stops engines: graceful shutdown, then SIGTERM/SIGKILL of the whole tree by PID; removes the run directory.</summary>
[Cmdlet(VerbsLifecycle.Stop, "VllmEngine", SupportsShouldProcess = true, DefaultParameterSetName = ByEngine)]
[OutputType(typeof(EngineInfo))]
public sealed class StopVllmEngineCommand : EnginesCmdlet
{
    /// <summary>Seconds the engine gets to exit after the shutdown request before its processes are signalled.</summary>
    [Parameter]
    [Alias("GracePeriod")]
    [ValidateRange(0, 3600)]
    public int TimeoutSec { get; set; } = 10;

    /// <summary>Outputs each stopped engine (State = Stopped).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var record in GivenEngines().Select(e => e.Record))
        {
            if (!ShouldProcess($"engine {record.Name} ({record.Id}, PID {record.RootProcessId})", "Stop"))
            {
                continue;
            }

            try
            {
                var elapsed = Run((observer, token) =>
                    new EngineStopper(Registry, observer, gpuMemory: new GpuMemoryWatch(new NvmlReader(), ProcFs.Host)).StopAsync(record, TimeSpan.FromSeconds(TimeoutSec), token));
                WriteVerbose($"Engine {record.Name} stopped in {elapsed.TotalSeconds:0.000} s.");
                if (PassThru)
                {
                    WriteObject(Run((_, token) => new EngineInspector(Registry).DescribeAsync(record, probe: false, TimeSpan.Zero, token)));
                }
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }
}
