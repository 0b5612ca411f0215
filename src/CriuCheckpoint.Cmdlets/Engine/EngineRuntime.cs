using System.Collections;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CriuCheckpoint.Engine;

/// <summary>
/// The canary: the engine's answer to one fixed greedy request (engine_host/canary.py), taken at prepare_checkpoint
/// and recorded in the manifest; every resume answers it again and compares (docs/protocol.md).
/// </summary>
public sealed class CheckpointCanary
{
    /// <summary>What the engine compares with: token ids exactly, logprobs within this (vLLM's snapshot oracle).</summary>
    public const double Tolerance = 1e-3;

    /// <summary>The most tokens a canary holds.</summary>
    public const int MaxTokens = 4;

    public string Prompt { get; set; } = string.Empty;

    public List<int> TokenIds { get; set; } = new();

    /// <summary>The log-softmax of the model's logits at each sampled token, rounded to 4 decimals.</summary>
    public List<double> Logprobs { get; set; } = new();

    public override string ToString() =>
        $"token ids [{string.Join(", ", TokenIds)}], logprobs [{string.Join(", ", Logprobs.Select(p => p.ToString("0.####", CultureInfo.InvariantCulture)))}]";
}

/// <summary>What the engine's tree was at prepare_checkpoint: its processes and GPUs, versions, environment.</summary>
public sealed class EngineRuntime
{
    /// <summary>python, and the packages the backend runs on (numpy, torch, torch_cuda, vllm), as the engine read them.</summary>
    public Dictionary<string, string> Versions { get; set; } = new();

    public EnvironmentIdentity Environment { get; set; } = new();

    public List<RuntimeProcess> Processes { get; set; } = new();

    /// <summary>Whether the kernel showed the peers of unix sockets (sock_diag), so that outside peers could be refused.</summary>
    public bool UnixPeersVisible { get; set; }
}

/// <summary>A process of the engine's tree with the GPUs whose device files it held open.</summary>
public sealed class RuntimeProcess
{
    public int ProcessId { get; set; }

    public string Role { get; set; } = string.Empty;

    public List<string> GpuUuids { get; set; } = new();
}

/// <summary>
/// The VLLM_, CUDA_, NCCL_, TORCH_ and TRITON_ variables of an environment: their names, and the SHA-256 of every
/// <c>NAME=VALUE\n</c> in ordinal order of the names (the values may be secrets, so only the hash is kept).
/// </summary>
public sealed class EnvironmentIdentity
{
    private static readonly string[] Prefixes = ["VLLM_", "CUDA_", "NCCL_", "TORCH_", "TRITON_"];

    public List<string> Names { get; set; } = new();

    public string Sha256 { get; set; } = string.Empty;

    /// <summary>This process's environment: what an engine started from this session now would be given.</summary>
    public static EnvironmentIdentity OfProcess() => Of(System.Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
        .Select(e => KeyValuePair.Create((string)e.Key, (string?)e.Value ?? string.Empty)));

    public static EnvironmentIdentity Of(IEnumerable<KeyValuePair<string, string>> environment)
    {
        var selected = environment.Where(e => Prefixes.Any(p => e.Key.StartsWith(p, StringComparison.Ordinal)))
            .OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
        var text = string.Concat(selected.Select(e => $"{e.Key}={e.Value}\n"));
        return new EnvironmentIdentity
        {
            Names = selected.Select(e => e.Key).ToList(),
            Sha256 = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text))).ToLowerInvariant(),
        };
    }

    public override string ToString() => $"{(Sha256.Length >= 12 ? Sha256[..12] : Sha256)} of [{string.Join(", ", Names)}]";
}

/// <summary>What prepare_checkpoint answered besides "prepared": the canary and what it took, and the tree's inventory.</summary>
internal sealed record PrepareOutcome(CheckpointCanary? Canary, TimeSpan CanaryTime, EngineRuntime? Runtime);

/// <summary>
/// What a resume message asks besides the link: of the canary, the answer to expect (the manifest's), none to let the
/// engine compare with its own from its last prepare_checkpoint, or to skip it (-SkipCanary); and the socket of the
/// weight holder to map released weights from, if any.
/// </summary>
internal sealed record ResumeTerms(CheckpointCanary? Canary, bool SkipCanary, string? WeightHolder = null)
{
    public static readonly ResumeTerms EnginesOwn = new(null, false);
}
