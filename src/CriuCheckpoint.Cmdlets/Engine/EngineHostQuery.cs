using CliWrap;
using CliWrap.Buffered;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Engine;

/// <summary>
/// One question to the engine host of an interpreter (python -m engine_host --&lt;flag&gt;), answered on stdout: run in
/// the engine host's folder with its environment, its command line written to -Debug, bounded by a deadline. A
/// deadline that passes is an OperationCanceledException the caller's token did not ask for; an interpreter that
/// cannot be run is a Win32Exception.
/// </summary>
internal static class EngineHostQuery
{
    public static async Task<BufferedCommandResult> AskAsync(string python, string flag, IReadOnlyDictionary<string, string?> environment,
        TimeSpan deadline, IOperationObserver observer, CancellationToken cancellationToken)
    {
        string[] arguments = ["-m", "engine_host", flag];
        observer.Debug(CommandLine.Format(arguments.Prepend(python)));
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(deadline);
        return await Cli.Wrap(python).WithArguments(arguments)
            .WithEnvironmentVariables(environment).WithWorkingDirectory(EngineHostFiles.Directory)
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(bounded.Token).ConfigureAwait(false);
    }
}
