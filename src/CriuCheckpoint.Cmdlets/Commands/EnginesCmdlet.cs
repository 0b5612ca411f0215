using System.Management.Automation;

namespace CriuCheckpoint.Commands;

/// <summary>A cmdlet that acts on each engine it is given, by object, name (wildcards allowed) or id.</summary>
public abstract class EnginesCmdlet : CriuCheckpointCmdlet
{
    /// <summary>Engine objects, or names (wildcards allowed) or ids.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Name", "Id")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public EngineIdentity[] Engine { get; set; } = Array.Empty<EngineIdentity>();
}
