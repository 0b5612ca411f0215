using System.Collections;
using System.Management.Automation.Language;
using System.Management.Automation;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Commands;

/// <summary>Tab completion for the -Name of the weight-holder cmdlets: the holders of this host, escaped and quoted as engine names are.</summary>
public sealed class WeightHolderNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = NamePattern.ToRegex(EngineNameCompleter.Typed(wordToComplete) + "*");
        return WeightHolderRegistry.For(EngineRegistry.Default).List()
            .Where(h => pattern.IsMatch(h.Name))
            .Select(h => new CompletionResult(EngineNameCompleter.Quote(NamePattern.EscapeText(h.Name)), h.Name, CompletionResultType.ParameterValue,
                $"{h.Name}: {h.Model} on GPU {h.GpuIndex} ({h.State})"));
    }
}
