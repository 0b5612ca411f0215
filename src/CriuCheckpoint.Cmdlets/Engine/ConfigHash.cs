using System.Collections;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text;
using CriuCheckpoint.Link;

namespace CriuCheckpoint.Engine;

/// <summary>
/// The identity of an engine's initialised state: equal hashes mean a checkpoint of one can serve the other.
/// Computed over a canonical JSON form (sorted keys, invariant numbers) so it is stable across hosts and runs.
/// </summary>
internal static class ConfigHash
{
    public static string Compute(EngineSpec spec)
    {
        var canonical = new SortedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["protocol"] = LinkProtocol.Version,
            ["backend"] = spec.Backend,
            ["model"] = spec.Model,
            ["workers"] = spec.Workers,
            ["device"] = spec.Device,
            ["dtype"] = spec.Dtype,
            ["max_model_len"] = spec.MaxModelLen,
            ["gpu_memory_utilization"] = spec.GpuMemoryUtilization,
            ["engine_args"] = Canonicalize(spec.EngineArgs),
        };
        var json = CanonicalJson(canonical);
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(json));
        return Convert.ToHexString(digest, 0, 8).ToLowerInvariant();
    }

    /// <summary>JSON with sorted keys and invariant formatting; the engine receives its args in this form too.</summary>
    public static string CanonicalJson(object? value) => JsonSerializer.Serialize(Canonicalize(value));

    private static object? Canonicalize(object? value) => value switch
    {
        null => null,
        string s => s,
        bool b => b,
        IDictionary dictionary => dictionary.Keys.Cast<object>()
            .ToDictionary(k => Convert.ToString(k, CultureInfo.InvariantCulture)!, k => Canonicalize(dictionary[k]))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ToDictionary(p => p.Key, p => p.Value),
        IReadOnlyDictionary<string, object?> readOnly => readOnly
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ToDictionary(p => p.Key, p => Canonicalize(p.Value)),
        IEnumerable sequence => sequence.Cast<object?>().Select(Canonicalize).ToArray(),
        float or double or decimal => Convert.ToDouble(value, CultureInfo.InvariantCulture),
        sbyte or byte or short or ushort or int or uint or long => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };
}
