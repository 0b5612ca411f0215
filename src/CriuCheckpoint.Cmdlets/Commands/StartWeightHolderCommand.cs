using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Commands;

/// <summary>
/// Starts a resident weight holder: a process that reads a model directory's safetensors files into one GPU's memory
/// once and keeps them there, so engines of that model restored onto that GPU map its weights at resume instead of
/// reading the files.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "WeightHolder", SupportsShouldProcess = true)]
[OutputType(typeof(WeightHolder))]
public sealed class StartWeightHolderCommand : CriuCheckpointCmdlet
{
    /// <summary>The model directory (safetensors files), as the engines that will use it were started with.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ModelCompleter))]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = string.Empty;

    /// <summary>The GPU to hold the weights on: its index as nvidia-smi shows it.</summary>
    [Parameter]
    [Alias("GpuIndex")]
    [ValidateRange(0, 63)]
    public int Gpu { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? PythonPath { get; set; }

    /// <summary>Seconds to wait for the weights to be in GPU memory before the holder is stopped and an error written.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 600;

    protected override void ProcessRecord()
    {
        var model = GetUnresolvedProviderPathFromPSPath(Model);
        if (!Directory.Exists(model))
        {
            WriteFailure(new CriuCheckpointException(ErrorIds.ModelNotFound, FailureKind.ObjectNotFound,
                $"Model directory '{model}' does not exist: a weight holder reads a directory of safetensors files.", Model));
            return;
        }

        if (!ShouldProcess($"weights of {model} on GPU {Gpu}", "Hold in GPU memory"))
        {
            return;
        }

        try
        {
            var holder = Run(async (observer, token) =>
            {
                var python = await PythonLocator.Host.ResolveAsync(PythonPath, observer, token).ConfigureAwait(false);
                return await new WeightHolderLauncher(WeightHolderRegistry.For(Registry), observer)
                    .StartAsync(model, Gpu, python, Name, TimeSpan.FromSeconds(TimeoutSec), token).ConfigureAwait(false);
            });
            WriteObject(holder);
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }
}
