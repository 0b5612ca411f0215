namespace CriuCheckpoint.Engine;

/// <summary>A finished completion of one prompt.</summary>
public sealed class GenerationResult
{
    public string RequestId { get; init; } = string.Empty;

    public string Prompt { get; init; } = string.Empty;

    public string Text { get; init; } = string.Empty;

    public IReadOnlyList<int> TokenIds { get; init; } = Array.Empty<int>();

    /// <summary>length, stop or abort.</summary>
    public string FinishReason { get; init; } = string.Empty;

    public int PromptTokens { get; init; }

    public int CompletionTokens { get; init; }

    /// <summary>Seconds from the request to its first token, as the engine measured them.</summary>
    public double TimeToFirstTokenSeconds { get; init; }

    /// <summary>Seconds from the request to its last token, as the engine measured them.</summary>
    public double DurationSeconds { get; init; }

    /// <summary>Completion tokens per second of the whole request; null when it took no measurable time.</summary>
    public double? TokensPerSecond => DurationSeconds > 0 ? CompletionTokens / DurationSeconds : null;

    public EngineInfo Engine { get; init; } = new();

    public string EngineName => Engine.Name;

    public override string ToString() => Text;
}

/// <summary>A streamed part of a completion (-Stream); the last one carries the finish reason and the result.</summary>
public sealed class GenerationChunk
{
    public string RequestId { get; init; } = string.Empty;

    public string Prompt { get; init; } = string.Empty;

    public int Index { get; init; }

    public string Text { get; init; } = string.Empty;

    public IReadOnlyList<int> TokenIds { get; init; } = Array.Empty<int>();

    public bool IsFinal => Result is not null;

    public string? FinishReason => Result?.FinishReason;

    public GenerationResult? Result { get; init; }

    public EngineInfo Engine { get; init; } = new();

    public string EngineName => Engine.Name;

    public override string ToString() => Text;
}

/// <summary>Sampling and streaming options of a generate request.</summary>
internal sealed record GenerationOptions
{
    public int MaxTokens { get; init; } = 16;

    public double Temperature { get; init; }

    public double TopP { get; init; } = 1.0;

    public long? Seed { get; init; }

    public IReadOnlyList<string> Stop { get; init; } = Array.Empty<string>();

    public bool Stream { get; init; }
}
