using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Brings engines that were prepared for a checkpoint, and never dumped, back to serving.</summary>
[Cmdlet(VerbsLifecycle.Resume, "VllmEngine", SupportsShouldProcess = true, DefaultParameterSetName = ByEngine)]
[OutputType(typeof(EngineInfo))]
public sealed class ResumeVllmEngineCommand : EnginesCmdlet
{
    /// <summary>Seconds the engine gets to read its resume message and serve again.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 60;

    /// <summary>Let the engine serve without comparing its canary with the one it answered at prepare_checkpoint.</summary>
    [Parameter]
    public SwitchParameter SkipCanary { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var record in GivenEngines().Select(e => e.Record))
        {
            if (!ShouldProcess($"engine {record.Name} ({record.Id}, PID {record.RootProcessId})", "Resume"))
            {
                continue;
            }

            try
            {
                WriteObject(Run((observer, token) =>
                    new PreparedEngineResumer(Registry, observer).ResumeAsync(record, SkipCanary, TimeSpan.FromSeconds(TimeoutSec), token)));
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }
}
