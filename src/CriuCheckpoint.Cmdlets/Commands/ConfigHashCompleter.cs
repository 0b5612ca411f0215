using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Tab completion for -ConfigHash: the config hashes of the checkpoints at the -Path (or -LiteralPath) given, a store
/// or a checkpoint directory, or of the current folder when none is given.
/// </summary>
public sealed class ConfigHashCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = EngineNameCompleter.Typed(wordToComplete);
        return Checkpoints(FileSystemPath(First(fakeBoundParameters["LiteralPath"]) ?? First(fakeBoundParameters["Path"])))
            .Where(c => c.ConfigHash.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
            .Select(c => new CompletionResult(c.ConfigHash, c.ConfigHash, CompletionResultType.ParameterValue,
                $"{c.Backend} {c.Model}, saved from {c.EngineName} at {c.CreatedAt:u}"));
    }

    private static IEnumerable<EngineCheckpoint> Checkpoints(string? path)
    {
        foreach (var directory in path is null ? Array.Empty<string>() : CheckpointLocator.Directories(path))
        {
            EngineCheckpoint checkpoint;
            try
            {
                checkpoint = CheckpointStore.Open(directory);
            }
            catch (CriuCheckpointException)
            {
                // A damaged checkpoint has no hash to offer; Get-EngineCheckpoint reports it.
                continue;
            }

            yield return checkpoint;
        }
    }

    /// <summary>The path as the cmdlet would read it, relative to the session's location; that location when none is given.</summary>
    private static string? FileSystemPath(string? given)
    {
        using var shell = PowerShell.Create(RunspaceMode.CurrentRunspace);
        shell.AddScript(given is null
            ? "(Get-Location -PSProvider FileSystem).ProviderPath"
            : "$ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($args[0])").AddArgument(given);
        return shell.Invoke<string>().FirstOrDefault();
    }

    /// <summary>The first of the values bound so far: one path, or the first of several.</summary>
    private static string? First(object? bound) => bound switch
    {
        null => null,
        string text => text,
        IEnumerable values => values.Cast<object?>().FirstOrDefault()?.ToString(),
        _ => bound.ToString(),
    };
}
