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

    public TimeSpan TimeToFirstToken { get; init; }

    public TimeSpan Duration { get; init; }

    public EngineInfo Engine { get; init; } = new();

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
