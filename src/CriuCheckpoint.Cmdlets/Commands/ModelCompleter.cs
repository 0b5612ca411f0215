using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Tab completion for -Model: a path being typed (starting with /, . or ~, as Start-VllmEngine tells a model directory
/// from a preset or a hub name) completes to folders; anything else to the presets of the -Backend given, or of every
/// backend when none is.
/// </summary>
public sealed class ModelCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        EngineBackends.LooksLikePath(EngineNameCompleter.Typed(wordToComplete))
            ? CompletionCompleters.CompleteFilename(wordToComplete).Where(c => c.ResultType == CompletionResultType.ProviderContainer)
            : BackendCompleter.Complete(BackendCompleter.Catalog(fakeBoundParameters)?.Presets(fakeBoundParameters["Backend"] as string) ?? [], wordToComplete);
}
