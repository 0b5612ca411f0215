using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace CriuCheckpoint.Commands;

/// <summary>Tab completion for -Model: the presets of the -Backend given, or of every backend when none is.</summary>
public sealed class ModelCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        BackendCompleter.Complete(BackendCompleter.Catalog(fakeBoundParameters)?.Presets(fakeBoundParameters["Backend"] as string) ?? [], wordToComplete);
}
