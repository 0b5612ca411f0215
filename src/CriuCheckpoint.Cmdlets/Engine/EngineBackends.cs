using System.Collections.Concurrent;
using System.Text.Json;
using CliWrap.Buffered;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Engine;

/// <summary>
/// The backends as the engine host itself describes them, so names, <c>auto</c>, default models and presets are
/// defined once, in Python. Asked once per interpreter and PYTHONPATH (a PYTHONPATH can make vLLM importable) for
/// the life of the process.
/// </summary>
internal static class EngineBackends
{
    public const string Auto = "auto";

    private static readonly TimeSpan DescribeTimeout = TimeSpan.FromSeconds(30);

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static readonly ConcurrentDictionary<string, BackendCatalog> Catalogs = new(StringComparer.Ordinal);

    /// <summary>Models starting with '/', '.' or '~' are paths that must exist; others are presets or hub names.</summary>
    public static bool LooksLikePath(string model) =>
        model.StartsWith('/') || model.StartsWith('.') || model.StartsWith('~');

    public static async Task<BackendCatalog> DescribeAsync(string python, IOperationObserver observer, CancellationToken cancellationToken)
    {
        var environment = EngineHostEnvironment.Create();
        var key = $"{python}\0{environment["PYTHONPATH"]}";
        if (Catalogs.TryGetValue(key, out var known))
        {
            return known;
        }

        var catalog = await AskAsync(python, environment, observer, cancellationToken).ConfigureAwait(false);
        return Catalogs.GetOrAdd(key, catalog);
    }

    private static async Task<BackendCatalog> AskAsync(string python, IReadOnlyDictionary<string, string?> environment, IOperationObserver observer, CancellationToken cancellationToken)
    {
        BufferedCommandResult result;
        try
        {
            result = await EngineHostQuery.AskAsync(python, "--describe-backends", environment, DescribeTimeout, observer, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CriuCheckpointException(ErrorIds.EngineStartupFailed, FailureKind.OperationTimeout,
                $"'{python}' did not describe its backends within {DescribeTimeout.TotalSeconds:0} s.", python);
        }

        return result.ExitCode == 0 && Parse(result.StandardOutput) is { IsComplete: true } catalog ? catalog
            : throw new CriuCheckpointException(ErrorIds.EngineStartupFailed, FailureKind.InvalidOperation,
                $"'{python}' could not say which backends it can run (exit code {result.ExitCode}).", python,
                details: string.Join(Environment.NewLine, result.StandardError, result.StandardOutput).Trim());
    }

    private static BackendCatalog? Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<BackendCatalog>(json, JsonOptions);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
