using CliWrap.Buffered;
using CliWrap;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Engine;

internal static class EngineBackends
{
    public const string Auto = "auto";

    /// <summary>Backends in the order <c>auto</c> prefers them.</summary>
    public static IReadOnlyList<string> Known { get; } = new[] { "vllm", "torch", "tiny" };

    /// <summary>What -Backend accepts.</summary>
    public static IReadOnlyList<string> Accepted { get; } = new[] { Auto }.Concat(Known).ToArray();

    /// <summary>The model each backend loads when -Model is not given.</summary>
    public static string? DefaultModel(string backend) => backend switch
    {
        "tiny" => "tiny-256m",
        "torch" => "llama-1b",
        _ => null,
    };

    /// <summary>Models starting with '/', '.' or '~' are paths that must exist; others are presets or hub names.</summary>
    public static bool LooksLikePath(string model) =>
        model.StartsWith('/') || model.StartsWith('.') || model.StartsWith('~');

    /// <summary>
    /// Resolves <c>auto</c> before anything is hashed or launched, so a configuration hash always names one backend:
    /// vllm when the Python can import it, else torch, else tiny. Finding a package is enough; importing torch or
    /// vLLM here would cost seconds that the engine pays again anyway.
    /// </summary>
    public static async Task<string> ResolveAsync(string requested, string python, CancellationToken cancellationToken)
    {
        if (requested != Auto)
        {
            return requested;
        }

        const string probe = "import importlib.util as u; print(next((b for b in ('vllm', 'torch') if u.find_spec(b)), 'tiny'))";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var result = await Cli.Wrap(python).WithArguments(new[] { "-c", probe }).WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync(timeout.Token).ConfigureAwait(false);
        var chosen = result.StandardOutput.Trim();
        return result.ExitCode == 0 && Known.Contains(chosen) ? chosen : throw new CriuCheckpointException(
            ErrorIds.EngineStartupFailed, FailureKind.InvalidOperation,
            $"'{python}' could not say which backend it can run (exit code {result.ExitCode}).", python, details: result.StandardError);
    }
}
