using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// What -Engine and -Id take: an Engine object, or a text that names engines of the registry (a name or id for
/// -Engine, an id for -Id; wildcards allowed). PowerShell converts either through a constructor, so one parameter
/// binds both, from the command line and from the pipeline; the cmdlet looks the text up when it runs, where a miss
/// is an ordinary error.
/// </summary>
public sealed class EngineIdentity
{
    public EngineIdentity(EngineInfo engine)
    {
        Engine = engine;
        Text = engine.Id;
    }

    public EngineIdentity(string text) => Text = text;

    /// <summary>The Engine object given; null when a text was given.</summary>
    internal EngineInfo? Engine { get; }

    internal string Text { get; }

    public override string ToString() => Engine?.Name ?? Text;
}
