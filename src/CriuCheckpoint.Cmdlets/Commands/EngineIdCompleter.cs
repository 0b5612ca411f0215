using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Tab completion for -Id: the ids of the engines in the registry that match what is typed, each with its name.</summary>
public sealed class EngineIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = NamePattern.ToRegex(EngineNameCompleter.Typed(wordToComplete) + "*");
        return EngineRegistry.Default.List()
            .Where(r => pattern.IsMatch(r.Id))
            .Select(r => new CompletionResult(r.Id, $"{r.Id} ({r.Name})", CompletionResultType.ParameterValue, $"{r.Name}: {r.Spec.Backend} {r.Spec.Model}"));
    }
}
