using CriuCheckpoint.Core;

namespace CriuCheckpoint.Engine;

/// <summary>One backend as the engine host describes it (python -m engine_host --describe-backends).</summary>
internal sealed record BackendDescription(string Name, string? DefaultModel, IReadOnlyList<PresetDescription> Presets, bool Available, string? Reason);

/// <summary>One built-in model of a backend: its name, its shape in words, and how many parameters it has.</summary>
internal sealed record PresetDescription(string Name, string Description, long Parameters);

/// <summary>The backends one Python can run, in the order <c>auto</c> prefers them, and what <c>auto</c> is there.</summary>
internal sealed record BackendCatalog(IReadOnlyList<BackendDescription> Backends, string Auto, IReadOnlyList<string> Order)
{
    /// <summary>python and the packages this Python has installed (engine_host/inventory.py runtime_versions).</summary>
    public IReadOnlyDictionary<string, string>? Versions { get; init; }

    /// <summary>What -Backend accepts.</summary>
    public IEnumerable<string> Accepted => Order.Prepend(EngineBackends.Auto);

    public BackendDescription? Find(string name) => Backends.FirstOrDefault(b => b.Name == name);

    /// <summary>The backend that runs for <paramref name="requested"/>: <c>auto</c> resolved, any other name checked.</summary>
    public string Resolve(string requested) =>
        requested == EngineBackends.Auto ? Auto
        : Order.Contains(requested) ? requested
        : throw new CriuCheckpointException(ErrorIds.UnknownBackend, FailureKind.InvalidArgument,
            $"Unknown backend '{requested}'. Known backends: {string.Join(", ", Accepted)}.", requested);

    /// <summary>The preset names of one backend (<c>auto</c>: of the backend it resolves to), or of all when none is named.</summary>
    public IEnumerable<string> Presets(string? backend) =>
        backend is null ? Backends.SelectMany(b => b.Presets).Select(p => p.Name).Distinct()
        : Find(backend == EngineBackends.Auto ? Auto : backend)?.Presets.Select(p => p.Name) ?? [];

    /// <summary>The built-in models of one backend (<c>auto</c>: of the backend it resolves to, checked), or of all when none is named.</summary>
    public IEnumerable<EngineModel> Models(string? backend)
    {
        var chosen = backend is null ? null : Resolve(backend);
        return Backends.Where(b => chosen is null || b.Name == chosen).SelectMany(b => b.Presets.Select(preset => new EngineModel
        {
            Backend = b.Name,
            Name = preset.Name,
            Description = preset.Description,
            Parameters = preset.Parameters,
            IsDefault = preset.Name == b.DefaultModel,
            Available = b.Available,
            Reason = b.Reason,
        }));
    }

    /// <summary>Whether the JSON it was read from named every backend it orders, with an <c>auto</c> among them.</summary>
    public bool IsComplete =>
        Order is { Count: > 0 } && Backends is not null && Backends.Count == Order.Count
        && Backends.All(b => b is { Name: not null, Presets: not null } && b.Presets.All(p => p is { Name: not null, Description: not null }))
        && Order.All(name => Find(name) is not null)
        && Order.Contains(Auto);
}
