using MessagePack;
using MessagePack.Resolvers;

namespace CriuCheckpoint.Link;

// The link's typed messages (docs/protocol.md). Keys are the wire names; readers skip keys they do not know.

[MessagePackObject]
internal sealed class RequestEnvelope<TArgs>
{
    [Key("v")] public int Version { get; set; } = LinkProtocol.Version;

    [Key("id")] public string Id { get; set; } = string.Empty;

    [Key("op")] public string Op { get; set; } = string.Empty;

    [Key("args")] public TArgs Args { get; set; } = default!;
}

[MessagePackObject]
internal sealed class GenerateArgs
{
    [Key("prompt")] public string Prompt { get; set; } = string.Empty;

    [Key("max_tokens")] public int MaxTokens { get; set; } = 16;

    [Key("temperature")] public double Temperature { get; set; }

    [Key("top_p")] public double TopP { get; set; } = 1.0;

    [Key("seed")] public long? Seed { get; set; }

    [Key("stop")] public string[] Stop { get; set; } = Array.Empty<string>();

    [Key("stream")] public bool Stream { get; set; }
}

[MessagePackObject]
internal sealed class AbortArgs
{
    [Key("request_id")] public string RequestId { get; set; } = string.Empty;
}

[MessagePackObject]
internal sealed class ReplyHeader
{
    [Key("v")] public int Version { get; set; }

    [Key("id")] public string Id { get; set; } = string.Empty;

    [Key("kind")] public string Kind { get; set; } = string.Empty;

    [Key("code")] public string? Code { get; set; }

    [Key("message")] public string? Message { get; set; }
}

[MessagePackObject]
internal sealed class PidInfo
{
    [Key("pid")] public int Pid { get; set; }

    [Key("role")] public string Role { get; set; } = string.Empty;
}

[MessagePackObject]
internal sealed class HelloReply
{
    [Key("protocol")] public int Protocol { get; set; }

    [Key("engine_version")] public string EngineVersion { get; set; } = string.Empty;

    [Key("backend")] public string Backend { get; set; } = string.Empty;

    [Key("model")] public string Model { get; set; } = string.Empty;

    [Key("device")] public string Device { get; set; } = string.Empty;

    [Key("dtype")] public string Dtype { get; set; } = string.Empty;

    [Key("workers")] public int Workers { get; set; }

    [Key("config_hash")] public string ConfigHash { get; set; } = string.Empty;

    [Key("pids")] public PidInfo[] Pids { get; set; } = Array.Empty<PidInfo>();

    [Key("host_memory_bytes")] public long HostMemoryBytes { get; set; }

    [Key("gpu_memory_bytes")] public long GpuMemoryBytes { get; set; }

    [Key("kv_cache_bytes")] public long KvCacheBytes { get; set; }

    [Key("capabilities")] public string[] Capabilities { get; set; } = Array.Empty<string>();

    [Key("max_model_len")] public int MaxModelLen { get; set; }

    [Key("vocab_size")] public int VocabSize { get; set; }
}

[MessagePackObject]
internal sealed class HealthReply
{
    [Key("state")] public string State { get; set; } = string.Empty;

    [Key("in_flight")] public int InFlight { get; set; }

    [Key("uptime_s")] public double UptimeSeconds { get; set; }

    [Key("steps")] public long Steps { get; set; }
}

[MessagePackObject]
internal sealed class GenerateChunkReply
{
    [Key("text")] public string Text { get; set; } = string.Empty;

    [Key("token_ids")] public int[] TokenIds { get; set; } = Array.Empty<int>();
}

[MessagePackObject]
internal sealed class GenerateFinalReply
{
    [Key("text")] public string Text { get; set; } = string.Empty;

    [Key("token_ids")] public int[] TokenIds { get; set; } = Array.Empty<int>();

    [Key("finish_reason")] public string FinishReason { get; set; } = string.Empty;

    [Key("prompt_tokens")] public int PromptTokens { get; set; }

    [Key("completion_tokens")] public int CompletionTokens { get; set; }

    [Key("ttft_s")] public double TimeToFirstTokenSeconds { get; set; }

    [Key("duration_s")] public double DurationSeconds { get; set; }
}

[MessagePackObject]
internal sealed class AbortReply
{
    [Key("aborted")] public bool Aborted { get; set; }
}

internal static class LinkProtocol
{
    public const int Version = 2;

    /// <summary>The reply kinds that end a request; a reply of any other kind ("chunk") is part of a stream.</summary>
    public static class Kinds
    {
        public const string Final = "final";
        public const string Error = "error";
    }

    public static class Ops
    {
        public const string Hello = "hello";
        public const string Health = "health";
        public const string Generate = "generate";
        public const string Abort = "abort";
        public const string Shutdown = "shutdown";
        public const string PrepareCheckpoint = "prepare_checkpoint";
    }

    /// <summary>Engine-side error codes the client maps to its own ErrorIds.</summary>
    public static class Codes
    {
        public const string NotReady = "not_ready";
        public const string BadRequest = "bad_request";
        public const string PromptTooLong = "prompt_too_long";
        public const string UnknownOp = "unknown_op";
        public const string UnsupportedVersion = "unsupported_version";
        public const string EngineError = "engine_error";
        public const string CheckpointUnsupported = "checkpoint_unsupported";
    }

    /// <summary>
    /// The messages are internal types: the standard resolver builds formatters in a dynamic assembly that cannot
    /// see them, the AllowPrivate one builds them as methods that may.
    /// </summary>
    public static MessagePackSerializerOptions SerializerOptions { get; } = MessagePackSerializerOptions.Standard
        .WithResolver(StandardResolverAllowPrivate.Instance)
        .WithSecurity(MessagePackSecurity.UntrustedData);
}

[MessagePackObject]
internal sealed class PrepareCheckpointArgs
{
    [Key("drain_timeout_s")] public double DrainTimeoutSeconds { get; set; } = 30;

    [Key("abort_in_flight")] public bool AbortInFlight { get; set; }

    [Key("keep_caches")] public bool KeepCaches { get; set; }

    [Key("canary")] public bool Canary { get; set; } = true;
}

[MessagePackObject]
internal sealed class PrepareCheckpointReply
{
    [Key("state")] public string State { get; set; } = string.Empty;

    [Key("resume_fifo")] public string ResumeFifo { get; set; } = string.Empty;

    [Key("aborted")] public int Aborted { get; set; }

    [Key("canary")] public CanaryMessage? Canary { get; set; }

    [Key("canary_s")] public double CanarySeconds { get; set; }

    [Key("inventory")] public InventoryMessage? Inventory { get; set; }
}

[MessagePackObject]
internal sealed class CanaryMessage
{
    [Key("prompt")] public string Prompt { get; set; } = string.Empty;

    [Key("token_ids")] public List<int> TokenIds { get; set; } = new();

    [Key("logprobs")] public List<double> Logprobs { get; set; } = new();
}

[MessagePackObject]
internal sealed class InventoryMessage
{
    [Key("processes")] public List<InventoryProcessMessage> Processes { get; set; } = new();

    [Key("unix_peers_visible")] public bool UnixPeersVisible { get; set; }

    [Key("versions")] public Dictionary<string, string> Versions { get; set; } = new();

    [Key("environment")] public EnvironmentMessage Environment { get; set; } = new();
}

[MessagePackObject]
internal sealed class InventoryProcessMessage
{
    [Key("pid")] public int ProcessId { get; set; }

    [Key("role")] public string Role { get; set; } = string.Empty;

    [Key("gpu_uuids")] public List<string> GpuUuids { get; set; } = new();
}

[MessagePackObject]
internal sealed class EnvironmentMessage
{
    [Key("names")] public List<string> Names { get; set; } = new();

    [Key("sha256")] public string Sha256 { get; set; } = string.Empty;
}
