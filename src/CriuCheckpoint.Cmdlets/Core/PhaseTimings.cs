using System.Collections;
using System.Globalization;

namespace CriuCheckpoint.Core;

/// <summary>
/// The phases of one operation in the order they ran, each with its seconds: a read-only map from phase name to
/// seconds, and TotalSeconds, the wall time of the whole operation (not the sum: phases may overlap or leave gaps).
/// It implements the non-generic <see cref="IDictionary"/> because that is what ConvertTo-Json writes as a JSON
/// object ({"launch": 0.013, ...}); PowerShell reads a phase as <c>$timings.launch</c> or <c>$timings['launch']</c>.
/// Work done beside the phases, overlapping them, is in <see cref="Background"/>: never a phase, so adding up the
/// phases never counts it twice.
/// </summary>
public sealed class PhaseTimings : IReadOnlyDictionary<string, double>, IDictionary
{
    private readonly List<KeyValuePair<string, TimeSpan>> phases = new();
    private readonly List<BackgroundWork> background = new();

    /// <summary>The wall time of the whole operation, as the code that timed it measured it.</summary>
    internal TimeSpan Total { get; set; }

    public double TotalSeconds => Total.TotalSeconds;

    /// <summary>The phases as measured, for the code that combines timings.</summary>
    internal IReadOnlyList<KeyValuePair<string, TimeSpan>> Phases => phases;

    /// <summary>Work done beside the phases (a restore's weight prefetch), in the order it was added; <c>$timings.Background</c>.</summary>
    public IReadOnlyList<BackgroundWork> Background => background;

    public int Count => phases.Count;

    public IEnumerable<string> Keys => phases.Select(p => p.Key);

    public IEnumerable<double> Values => phases.Select(p => p.Value.TotalSeconds);

    public double this[string phase] =>
        TryGetValue(phase, out var seconds) ? seconds : throw new KeyNotFoundException($"No phase '{phase}'; the phases are {string.Join(", ", Keys)}.");

    /// <summary>Timings read back from where they were kept as seconds (a manifest, an engine's record).</summary>
    internal static PhaseTimings FromSeconds(IEnumerable<KeyValuePair<string, double>> phases, double totalSeconds, IEnumerable<BackgroundWork>? background = null)
    {
        var timings = new PhaseTimings { Total = FromKeptSeconds(totalSeconds) };
        foreach (var (phase, seconds) in phases)
        {
            timings.Add(phase, FromKeptSeconds(seconds));
        }

        timings.background.AddRange(background ?? Array.Empty<BackgroundWork>());
        return timings;
    }

    /// <summary>
    /// The nearest tick: TimeSpan.FromSeconds truncates, and about one measured duration in 17 written as seconds reads
    /// back a tick short of itself.
    /// </summary>
    private static TimeSpan FromKeptSeconds(double seconds) => TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));

    /// <summary>Adds a phase; a phase that ran again adds to the time it already has, so each name appears once.</summary>
    internal void Add(string phase, TimeSpan duration)
    {
        var index = phases.FindIndex(p => p.Key == phase);
        if (index < 0)
        {
            phases.Add(new(phase, duration));
        }
        else
        {
            phases[index] = new(phase, phases[index].Value + duration);
        }
    }

    /// <summary>Adds work that ran beside the phases: it changes neither the phases nor the total.</summary>
    internal void AddBackground(BackgroundWork work) => background.Add(work);

    public bool ContainsKey(string key) => phases.Exists(p => p.Key == key);

    public bool TryGetValue(string key, out double value)
    {
        var index = phases.FindIndex(p => p.Key == key);
        value = index < 0 ? 0 : phases[index].Value.TotalSeconds;
        return index >= 0;
    }

    public IEnumerator<KeyValuePair<string, double>> GetEnumerator() =>
        phases.Select(p => new KeyValuePair<string, double>(p.Key, p.Value.TotalSeconds)).GetEnumerator();

    /// <summary>
    /// "1.212 s (launch 0.013, import 0.170)": what Export-Csv and string interpolation show; work done beside the
    /// phases follows them, "(...; beside them: weight-prefetch 0.950 s, 1.61 GB at 1.69 GB/s)".
    /// </summary>
    public override string ToString() =>
        $"{Seconds(TotalSeconds)} s (" + string.Join(", ", this.Select(p => $"{p.Key} {Seconds(p.Value)}"))
        + (background.Count == 0 ? string.Empty : "; beside them: " + string.Join(", ", background)) + ")";

    private static string Seconds(double seconds) => seconds.ToString("0.000", CultureInfo.InvariantCulture);

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    bool IDictionary.IsFixedSize => true;

    bool IDictionary.IsReadOnly => true;

    ICollection IDictionary.Keys => Keys.ToArray();

    ICollection IDictionary.Values => Values.ToArray();

    bool ICollection.IsSynchronized => false;

    object ICollection.SyncRoot => phases;

    object? IDictionary.this[object key]
    {
        get => key is string phase && TryGetValue(phase, out var seconds) ? seconds : null;
        set => throw ReadOnly();
    }

    bool IDictionary.Contains(object key) => key is string phase && ContainsKey(phase);

    IDictionaryEnumerator IDictionary.GetEnumerator() => new EntryEnumerator(Entries());

    void ICollection.CopyTo(Array array, int index) => Entries().CopyTo(array, index);

    void IDictionary.Add(object key, object? value) => throw ReadOnly();

    void IDictionary.Clear() => throw ReadOnly();

    void IDictionary.Remove(object key) => throw ReadOnly();

    private DictionaryEntry[] Entries() => this.Select(p => new DictionaryEntry(p.Key, p.Value)).ToArray();

    private static NotSupportedException ReadOnly() => new("Phase timings are read-only.");

    /// <summary>The entries in phase order (a Hashtable's enumerator would lose it).</summary>
    private sealed class EntryEnumerator : IDictionaryEnumerator
    {
        private readonly DictionaryEntry[] entries;
        private int position = -1;

        public EntryEnumerator(DictionaryEntry[] entries) => this.entries = entries;

        public DictionaryEntry Entry => entries[position];

        public object Key => Entry.Key;

        public object? Value => Entry.Value;

        public object Current => Entry;

        public bool MoveNext() => ++position < entries.Length;

        public void Reset() => position = -1;
    }
}
