using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// What an -Engine parameter takes: an Engine object, or the name (wildcards allowed) or id of an engine of the
/// registry. PowerShell converts either through a constructor, so one parameter binds both, from the command line
/// and from the pipeline; the cmdlet looks names up when it runs, where a miss is an ordinary error.
/// </summary>
public sealed class EngineIdentity
{
    public EngineIdentity(EngineInfo engine)
    {
        Engine = engine;
        NameOrId = engine.Id;
    }

    public EngineIdentity(string nameOrId) => NameOrId = nameOrId;

    /// <summary>The Engine object given; null when a name or id was given.</summary>
    internal EngineInfo? Engine { get; }

    internal string NameOrId { get; }

    public override string ToString() => Engine?.Name ?? NameOrId;
}
