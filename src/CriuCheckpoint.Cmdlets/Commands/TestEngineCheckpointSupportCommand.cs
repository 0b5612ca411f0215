using System.Management.Automation;
using CriuCheckpoint.Checkpoint;

namespace CriuCheckpoint.Commands;

/// <summary>Reports whether this host can checkpoint and restore engines (CRIU, kernel, privileges, GPU driver).</summary>
[Cmdlet(VerbsDiagnostic.Test, "EngineCheckpointSupport")]
[OutputType(typeof(SupportReport), typeof(bool))]
public sealed class TestEngineCheckpointSupportCommand : CriuCheckpointCmdlet
{
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CriuPath { get; set; }

    /// <summary>Outputs only $true or $false, for scripts.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void ProcessRecord()
    {
        var report = Run((observer, token) => SupportReport.CollectAsync(CriuPath, observer, token));
        foreach (var problem in report.Problems)
        {
            WriteVerbose(problem);
        }

        WriteObject(Quiet ? report.Supported : report);
    }
}
