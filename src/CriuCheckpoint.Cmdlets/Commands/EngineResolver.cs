using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Turns -Engine and -Id arguments into engines: an Engine object stands for itself, a text is looked up.</summary>
internal sealed class EngineResolver
{
    private readonly EngineRegistry registry;

    public EngineResolver(EngineRegistry registry) => this.registry = registry;

    /// <summary>
    /// Every engine the identity names, oldest first. A text without wildcards that names none fails with
    /// EngineNotFound; a pattern that matches none names nothing, as Get-Process -Name 'x*' does.
    /// </summary>
    public IReadOnlyList<EngineInfo> Resolve(EngineIdentity identity, EngineKey key)
    {
        if (identity.Engine is { } engine)
        {
            return new[] { engine };
        }

        var found = Find(identity.Text, key);
        if (found.Count == 0 && !NamePattern.HasWildcards(identity.Text))
        {
            throw NotFound(identity, key);
        }

        return found.Select(Describe).ToArray();
    }

    /// <summary>The one engine the identity names; fails with EngineNotFound for none, EngineNameAmbiguous for several.</summary>
    public EngineInfo ResolveOne(EngineIdentity identity, EngineKey key)
    {
        var engines = Resolve(identity, key);
        return engines.Count switch
        {
            1 => engines[0],
            0 => throw NotFound(identity, key),
            _ => throw new CriuCheckpointException(ErrorIds.EngineNameAmbiguous, FailureKind.InvalidArgument,
                $"'{identity.Text}' matches {engines.Count} engines ({string.Join(", ", engines.Select(e => $"{e.Name} {e.Id}"))}); name one by its id.",
                identity.Text),
        };
    }

    /// <summary>The records whose name matches the text or whose id is the text (NameOrId), or whose id matches it (Id).</summary>
    private IReadOnlyList<EngineRecord> Find(string text, EngineKey key)
    {
        var pattern = NamePattern.ToRegex(text);
        return registry.List()
            .Where(r => key == EngineKey.Id ? pattern.IsMatch(r.Id) : r.Id == text || pattern.IsMatch(r.Name))
            .ToArray();
    }

    private CriuCheckpointException NotFound(EngineIdentity identity, EngineKey key)
    {
        var what = key == EngineKey.Id ? "with the id" : "named";
        return new CriuCheckpointException(ErrorIds.EngineNotFound, FailureKind.ObjectNotFound,
            $"No engine {what} '{identity.Text}' is known in {registry.Root}. Get-VllmEngine lists them.", identity.Text);
    }

    private EngineInfo Describe(EngineRecord record) =>
        new EngineInspector(registry).DescribeAsync(record, probe: false, TimeSpan.Zero, CancellationToken.None).GetAwaiter().GetResult();
}
