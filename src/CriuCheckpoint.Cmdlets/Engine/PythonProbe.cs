using System.Text.Json;
using CliWrap.Buffered;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Engine;

/// <summary>
/// Asks an interpreter, through the engine host itself (python -m engine_host --check-dependencies), whether it can
/// import the packages every backend needs and whether its libzmq has CURVE: one process, with a deadline.
/// </summary>
internal sealed class PythonProbe : IPythonProbe
{
    /// <summary>Importing numpy and pyzmq from a cold disk takes seconds, never this long.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public async Task<PythonProbeResult> ProbeAsync(string python, IOperationObserver observer, CancellationToken cancellationToken)
    {
        BufferedCommandResult result;
        try
        {
            result = await EngineHostQuery.AskAsync(python, "--check-dependencies", EngineHostEnvironment.Create(), Deadline, observer, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new PythonProbeResult([], $"did not answer within {Deadline.TotalSeconds:0} s");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new PythonProbeResult([], $"could not be run ({e.Message})");
        }

        var output = string.Join(Environment.NewLine, result.StandardError, result.StandardOutput).Trim();
        return result.ExitCode == 0 && Parse(result.StandardOutput) is { Missing: not null } answer
            ? new PythonProbeResult(answer.Missing.Concat(answer.Curve || answer.Missing.Contains("zmq") ? [] : [PythonProbeResult.Curve]).ToArray(), null)
            : new PythonProbeResult([], $"cannot run the engine host (exit code {result.ExitCode})", output);
    }

    private static DependencyReport? Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<DependencyReport>(json, JsonOptions);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private sealed record DependencyReport(IReadOnlyList<string>? Missing, bool Curve);
}
