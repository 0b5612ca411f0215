using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Tab completion for -Engine: the names of the engines in the registry.</summary>
public sealed class EngineNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = wordToComplete.Trim('\'', '"');
        return EngineRegistry.Default.List()
            .Select(r => r.Name)
            .Where(name => name.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .Select(name => new CompletionResult(Quote(name), name, CompletionResultType.ParameterValue, name));
    }

    private static string Quote(string name) =>
        name.Any(c => char.IsWhiteSpace(c) || "'\"`$;,(){}@#&|<>".Contains(c)) ? $"'{name.Replace("'", "''")}'" : name;
}
