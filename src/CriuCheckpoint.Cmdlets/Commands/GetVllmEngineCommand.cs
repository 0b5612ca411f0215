using System.Management.Automation;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the engines of this host (from any session) with their live state.</summary>
[Cmdlet(VerbsCommon.Get, "VllmEngine", DefaultParameterSetName = ByEngine)]
[OutputType(typeof(EngineInfo))]
public sealed class GetVllmEngineCommand : CriuCheckpointCmdlet
{
    /// <summary>Engine objects, or names (wildcards allowed) or ids; every engine when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByEngine)]
    [Alias("EngineName", "Name")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public EngineIdentity[]? Engine { get; set; }

    /// <summary>Engine ids, wildcards allowed.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [Alias("EngineId")]
    [ArgumentCompleter(typeof(EngineIdCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public EngineIdentity[] Id { get; set; } = Array.Empty<EngineIdentity>();

    /// <summary>Seconds to wait for each engine's hello before it is reported as unresponsive (Failed).</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 5;

    protected override void ProcessRecord()
    {
        var (identities, key) = GivenEngine(Engine, Id);
        var records = identities is null ? Registry.List() : ResolveEngines(identities, key).Select(e => e.Record);
        foreach (var record in records)
        {
            WriteObject(Run((_, token) => new EngineInspector(Registry).DescribeAsync(record, probe: true, TimeSpan.FromSeconds(TimeoutSec), token)));
        }
    }
}
