using System.Management.Automation;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// A cmdlet that acts on each engine it is given: by object or name (-Engine, wildcards allowed) or by id (-Id,
/// wildcards allowed). Derived cmdlets name ByEngine as their DefaultParameterSetName.
/// </summary>
public abstract class EnginesCmdlet : CriuCheckpointCmdlet
{
    /// <summary>Engine objects, or names (wildcards allowed) or ids.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByEngine)]
    [Alias("EngineName", "Name")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public EngineIdentity[] Engine { get; set; } = Array.Empty<EngineIdentity>();

    /// <summary>Engine ids, wildcards allowed.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [Alias("EngineId")]
    [ArgumentCompleter(typeof(EngineIdCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public EngineIdentity[] Id { get; set; } = Array.Empty<EngineIdentity>();

    /// <summary>The engines given, each once; the arguments that name none are written as EngineNotFound errors.</summary>
    private protected IEnumerable<EngineInfo> GivenEngines()
    {
        var (identities, key) = GivenEngine(Engine, Id);
        return ResolveEngines(identities, key);
    }
}
