using System.Management.Automation;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the engines of this host (from any session) with their live state.</summary>
[Cmdlet(VerbsCommon.Get, "VllmEngine")]
[OutputType(typeof(EngineInfo))]
public sealed class GetVllmEngineCommand : CriuCheckpointCmdlet
{
    /// <summary>Engine objects, or names (wildcards allowed) or ids; every engine when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Name", "Id")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public EngineIdentity[]? Engine { get; set; }

    /// <summary>Seconds to wait for each engine's hello before it is reported as unresponsive (Failed).</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 5;

    protected override void ProcessRecord()
    {
        var records = Engine is null ? Registry.List() : ResolveEngines(Engine).Select(e => e.Record);
        foreach (var record in records)
        {
            WriteObject(Run((_, token) => new EngineInspector(Registry).DescribeAsync(record, probe: true, TimeSpan.FromSeconds(TimeoutSec), token)));
        }
    }
}
