using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the built-in models (presets) of the backends, as the engine host of the Python that would run them describes them.</summary>
[Cmdlet(VerbsCommon.Get, "EngineModel")]
[OutputType(typeof(EngineModel))]
public sealed class GetEngineModelCommand : CriuCheckpointCmdlet
{
    /// <summary>Only the models with these names (wildcards allowed).</summary>
    [Parameter(Position = 0)]
    [ArgumentCompleter(typeof(ModelCompleter))]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Only the models of this backend; auto means the backend Start-VllmEngine would choose.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(BackendCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Backend { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? PythonPath { get; set; }

    protected override void ProcessRecord()
    {
        try
        {
            var catalog = Run(async (observer, token) =>
            {
                var python = await PythonLocator.Host.ResolveAsync(PythonPath, observer, token).ConfigureAwait(false);
                return await EngineBackends.DescribeAsync(python, observer, token).ConfigureAwait(false);
            });
            var models = catalog.Models(Backend).ToArray();
            foreach (var name in Name ?? ["*"])
            {
                var pattern = WildcardPattern.Get(name, WildcardOptions.IgnoreCase);
                var matches = models.Where(m => pattern.IsMatch(m.Name)).ToArray();
                if (matches.Length == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                {
                    WriteFailure(new CriuCheckpointException(ErrorIds.ModelNotFound, FailureKind.ObjectNotFound,
                        $"No backend{(Backend is null ? string.Empty : $" of -Backend {Backend}")} has a built-in model named '{name}'. "
                        + "Start-VllmEngine -Model also takes a model directory or, for vllm, a hub name.", name));
                }

                WriteObject(matches, enumerateCollection: true);
            }
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }
}
