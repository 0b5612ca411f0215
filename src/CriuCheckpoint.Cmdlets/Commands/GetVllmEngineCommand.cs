using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the engines of this host (from any session) with their live state.</summary>
[Cmdlet(VerbsCommon.Get, "VllmEngine", DefaultParameterSetName = ByName)]
[OutputType(typeof(EngineInfo))]
public sealed class GetVllmEngineCommand : CriuCheckpointCmdlet
{
    private const string ByName = "Name";
    private const string ById = "Id";

    [Parameter(Position = 0, ParameterSetName = ByName)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = new[] { "*" };

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [ValidateNotNullOrEmpty]
    public string[] Id { get; set; } = Array.Empty<string>();

    /// <summary>Seconds to wait for each engine's hello before it is reported as unresponsive (Failed).</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 5;

    protected override void ProcessRecord()
    {
        var records = Registry.List();
        var keys = ParameterSetName == ById ? Id : Name;
        foreach (var key in keys)
        {
            var pattern = NamePattern.ToRegex(key);
            var matches = records.Where(r => ParameterSetName == ById ? r.Id == key : pattern.IsMatch(r.Name)).ToArray();
            if (matches.Length == 0 && !NamePattern.HasWildcards(key))
            {
                WriteFailure(new CriuCheckpointException(ErrorIds.EngineNotFound, FailureKind.ObjectNotFound,
                    $"No engine '{key}' is known in {Registry.Root}.", key));
            }

            foreach (var record in matches)
            {
                WriteObject(Run((_, token) => new EngineInspector(Registry).DescribeAsync(record, probe: true, TimeSpan.FromSeconds(TimeoutSec), token)));
            }
        }
    }
}
