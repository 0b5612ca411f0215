using System.Management.Automation;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// A cmdlet that acts on one engine: derived cmdlets declare -Engine in the ByEngine set as their pipeline needs it
/// (positional or not, mandatory or not), and this base declares the -Id that every one of them takes alike.
/// </summary>
public abstract class OneEngineCmdlet : CriuCheckpointCmdlet
{
    /// <summary>The engine's id; wildcards allowed when they match one engine.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [Alias("EngineId")]
    [ArgumentCompleter(typeof(EngineIdCompleter))]
    [ValidateNotNull]
    [SupportsWildcards]
    public EngineIdentity Id { get; set; } = null!;

    /// <summary>The argument that names the engine, -Engine's or -Id's, and how to match it.</summary>
    private protected (EngineIdentity Identity, EngineKey Key) GivenEngine(EngineIdentity engine) => GivenEngine(engine, Id);
}
