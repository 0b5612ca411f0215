using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Tab completion for -Backend without ValidateSet, so an unknown backend gets the UnknownBackend error. The names come
/// from the engine host of the -PythonPath given, or of the Python Start-VllmEngine would use.
/// </summary>
public sealed class BackendCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        Complete(Catalog(fakeBoundParameters)?.Accepted ?? [], wordToComplete);

    /// <summary>The catalog of the Python the command would run, or none when that Python cannot say (no completions).</summary>
    internal static BackendCatalog? Catalog(IDictionary fakeBoundParameters)
    {
        try
        {
            var python = PythonLocator.Host.ResolveAsync(fakeBoundParameters["PythonPath"] as string, NullObserver.Instance, CancellationToken.None).GetAwaiter().GetResult();
            return EngineBackends.DescribeAsync(python, NullObserver.Instance, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (CriuCheckpointException)
        {
            return null;
        }
    }

    internal static IEnumerable<CompletionResult> Complete(IEnumerable<string> candidates, string wordToComplete) =>
        candidates.Where(c => c.StartsWith(wordToComplete, StringComparison.OrdinalIgnoreCase)).Select(c => new CompletionResult(c));
}
