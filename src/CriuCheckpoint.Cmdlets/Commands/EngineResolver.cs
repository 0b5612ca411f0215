using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Turns -Engine arguments into engines: an Engine object stands for itself, a name or id is looked up.</summary>
internal sealed class EngineResolver
{
    private readonly EngineRegistry registry;

    public EngineResolver(EngineRegistry registry) => this.registry = registry;

    /// <summary>
    /// Every engine the identity names, oldest first. A name without wildcards, or an id, that names none fails
    /// with EngineNotFound; a pattern that matches none names nothing.
    /// </summary>
    public IReadOnlyList<EngineInfo> Resolve(EngineIdentity identity)
    {
        if (identity.Engine is { } engine)
        {
            return new[] { engine };
        }

        var found = registry.Find(identity.NameOrId);
        if (found.Count == 0 && !NamePattern.HasWildcards(identity.NameOrId))
        {
            throw new CriuCheckpointException(ErrorIds.EngineNotFound, FailureKind.ObjectNotFound,
                $"No engine '{identity.NameOrId}' is known in {registry.Root}. Get-VllmEngine lists them.", identity.NameOrId);
        }

        return found.Select(Describe).ToArray();
    }

    /// <summary>The one engine the identity names; fails with EngineNotFound for none, EngineNameAmbiguous for several.</summary>
    public EngineInfo ResolveOne(EngineIdentity identity)
    {
        var engines = Resolve(identity);
        return engines.Count switch
        {
            1 => engines[0],
            0 => throw new CriuCheckpointException(ErrorIds.EngineNotFound, FailureKind.ObjectNotFound,
                $"No engine matches '{identity.NameOrId}' in {registry.Root}. Get-VllmEngine lists them.", identity.NameOrId),
            _ => throw new CriuCheckpointException(ErrorIds.EngineNameAmbiguous, FailureKind.InvalidArgument,
                $"'{identity.NameOrId}' matches {engines.Count} engines ({string.Join(", ", engines.Select(e => $"{e.Name} {e.Id}"))}); name one by its id.",
                identity.NameOrId),
        };
    }

    private EngineInfo Describe(EngineRecord record) =>
        new EngineInspector(registry).DescribeAsync(record, probe: false, TimeSpan.Zero, CancellationToken.None).GetAwaiter().GetResult();
}
