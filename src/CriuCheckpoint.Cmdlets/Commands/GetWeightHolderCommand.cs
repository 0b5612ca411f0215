using System.Management.Automation;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the weight holders of this host, with the model, GPU and bytes each holds.</summary>
[Cmdlet(VerbsCommon.Get, "WeightHolder", DefaultParameterSetName = ByName)]
[OutputType(typeof(WeightHolder))]
public sealed class GetWeightHolderCommand : WeightHoldersCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ByName)]
    [ArgumentCompleter(typeof(WeightHolderNameCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = { "*" };

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Id { get; set; } = Array.Empty<string>();

    protected override void ProcessRecord() =>
        WriteObject(Matching(ParameterSetName == ById ? Id : Name, ParameterSetName == ById), enumerateCollection: true);
}
