using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Link;

namespace CriuCheckpoint.Commands;

/// <summary>Measures the round-trip time of the link to an engine, like Test-Connection does for a host.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "EngineLink", DefaultParameterSetName = ByEngine)]
[OutputType(typeof(LinkLatency))]
public sealed class MeasureEngineLinkCommand : OneEngineCmdlet
{
    /// <summary>The engine: an Engine object, or its name or id.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByEngine)]
    [Alias("EngineName", "Name")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNull]
    [SupportsWildcards]
    public EngineIdentity Engine { get; set; } = null!;


    [Parameter]
    [ValidateRange(1, 1_000_000)]
    public int Count { get; set; } = 100;

    /// <summary>Seconds to wait for each reply.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 5;

    protected override void ProcessRecord()
    {
        var (identity, key) = GivenEngine(Engine);
        if (ResolveEngine(identity, key) is not { } engine)
        {
            return;
        }

        try
        {
            WriteObject(Run(async (_, token) =>
            {
                using var link = new EngineInspector(Registry).Connect(engine.Record);
                return await LinkLatency.MeasureAsync(link, engine.Name, Count, TimeSpan.FromSeconds(TimeoutSec), token).ConfigureAwait(false);
            }));
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }
}
