using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Tab completion for -Backend without ValidateSet, so an unknown backend gets the UnknownBackend error.</summary>
public sealed class BackendCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        EngineBackends.Accepted
            .Where(b => b.StartsWith(wordToComplete, StringComparison.OrdinalIgnoreCase))
            .Select(b => new CompletionResult(b));
}
