using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Tab completion for -Engine and -Name: the names of the engines in the registry, as Get-VllmEngine lists them,
/// that match what is typed (wildcards allowed). A name is escaped where it holds a wildcard character and quoted
/// where PowerShell would otherwise split or expand it.
/// </summary>
public sealed class EngineNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = NamePattern.ToRegex(Typed(wordToComplete) + "*");
        return EngineRegistry.Default.List()
            .Where(r => pattern.IsMatch(r.Name))
            .GroupBy(r => r.Name, StringComparer.OrdinalIgnoreCase)
            .Select(named => new CompletionResult(Quote(NamePattern.EscapeText(named.Key)), named.Key, CompletionResultType.ParameterValue,
                $"{named.Key}: {string.Join(", ", named.Select(r => $"{r.Id} ({r.Spec.Backend} {r.Spec.Model})"))}"));
    }

    /// <summary>What the user typed, without the quotes PowerShell leaves on the word being completed.</summary>
    internal static string Typed(string wordToComplete) => wordToComplete.Trim('\'', '"');

    /// <summary>The text as one argument: in single quotes when it holds blanks or characters PowerShell parses.</summary>
    internal static string Quote(string text) =>
        text.Any(c => char.IsWhiteSpace(c) || "'\"`$;,(){}@#&|<>".Contains(c)) ? $"'{text.Replace("'", "''")}'" : text;
}
