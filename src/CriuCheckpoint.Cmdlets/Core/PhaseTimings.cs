using System.Globalization;

namespace CriuCheckpoint.Core;

/// <summary>Named phases in order, each with its duration; Total is the wall time of the whole operation.</summary>
public sealed class PhaseTimings
{
    private readonly List<KeyValuePair<string, TimeSpan>> phases = new();

    public TimeSpan Total { get; set; }

    public IReadOnlyList<KeyValuePair<string, TimeSpan>> Phases => phases;

    public TimeSpan this[string phase] => phases.FirstOrDefault(p => p.Key == phase).Value;

    public void Add(string phase, TimeSpan duration) => phases.Add(new(phase, duration));

    public override string ToString() =>
        $"{Total.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture)} s ("
        + string.Join(", ", phases.Select(p => $"{p.Key} {p.Value.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture)}"))
        + ")";
}
