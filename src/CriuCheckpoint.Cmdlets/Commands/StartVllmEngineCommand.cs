using System.Collections;
using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Starts an inference engine detached from this session and outputs it once it answers.</summary>
[Cmdlet(VerbsLifecycle.Start, "VllmEngine", SupportsShouldProcess = true)]
[OutputType(typeof(EngineInfo))]
public sealed class StartVllmEngineCommand : CriuCheckpointCmdlet
{
    /// <summary>A model directory, a preset, or a hub name; omitted, the backend's default (tiny-256m, llama-1b).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ModelCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Model { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(BackendCompleter))]
    [ValidateNotNullOrEmpty]
    public string Backend { get; set; } = EngineBackends.Auto;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    [Parameter]
    [ValidateRange(1, 64)]
    public int Workers { get; set; } = 1;

    [Parameter]
    [ValidateSet("auto", "cpu", "cuda")]
    public string Device { get; set; } = "auto";

    [Parameter]
    [ValidateSet("auto", "float32", "bfloat16", "float16")]
    public string Dtype { get; set; } = "auto";

    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int MaxModelLen { get; set; }

    [Parameter]
    [ValidateRange(0.01, 1.0)]
    public double GpuMemoryUtilization { get; set; } = 0.9;

    /// <summary>Backend-specific arguments, e.g. @{ n_layers = 2 } for tiny or @{ enforce_eager = $true } for vLLM.</summary>
    [Parameter]
    public Hashtable? EngineArgs { get; set; }

    /// <summary>
    /// torch backend, model directory with safetensors: checkpoints leave the weights out (released before the dump,
    /// reloaded from the model's files on resume), so images hold neither KV cache nor weights.
    /// </summary>
    [Parameter]
    public SwitchParameter WeightsFromSource { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? PythonPath { get; set; }

    /// <summary>Seconds to wait for the engine to answer before it is stopped and an error is written.</summary>
    [Parameter]
    [Alias("ReadyTimeout")]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 300;

    /// <summary>
    /// A checkpoint store: restore from it when it holds this configuration, else cold start and save into it.
    /// </summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CheckpointStore { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CriuPath { get; set; }

    protected override void ProcessRecord()
    {
        var spec = new EngineSpec
        {
            Backend = Backend,
            Model = Model is not null && EngineBackends.LooksLikePath(Model) ? GetUnresolvedProviderPathFromPSPath(Model) : Model ?? string.Empty,
            Workers = Workers,
            Device = Device,
            Dtype = Dtype,
            MaxModelLen = MaxModelLen > 0 ? MaxModelLen : null,
            GpuMemoryUtilization = GpuMemoryUtilization,
            EngineArgs = WithWeightsFromSource(ToArgs(EngineArgs)),
            Python = PythonPath ?? string.Empty,
        };
        if (!ShouldProcess($"{spec.Backend} engine for model '{(Model ?? "(the backend's default)")}' ({Workers} worker(s))", "Start"))
        {
            return;
        }

        try
        {
            var readyTimeout = TimeSpan.FromSeconds(TimeoutSec);
            var engine = CheckpointStore is null
                ? Run((observer, token) => new EngineLauncher(Registry, observer).StartAsync(spec, Name, readyTimeout, token))
                : Run((observer, token) => new EngineProvisioner(Services, observer).StartAsync(
                    spec, Name, new CheckpointStore(GetUnresolvedProviderPathFromPSPath(CheckpointStore)), readyTimeout, CriuPath, token));
            WriteTimings($"Engine {engine.Name} started", engine.StartupTime!);
            WriteObject(engine);
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }

    private SortedDictionary<string, object?> WithWeightsFromSource(SortedDictionary<string, object?> args)
    {
        if (WeightsFromSource)
        {
            args["weights_from_source"] = true;
        }

        return args;
    }

    internal static SortedDictionary<string, object?> ToArgs(Hashtable? table)
    {
        var args = new SortedDictionary<string, object?>(StringComparer.Ordinal);
        if (table is null)
        {
            return args;
        }

        foreach (DictionaryEntry entry in table)
        {
            args[entry.Key.ToString()!] = Unwrap(entry.Value);
        }

        return args;
    }

    private static object? Unwrap(object? value) => value switch
    {
        PSObject wrapped => Unwrap(wrapped.BaseObject),
        Hashtable nested => ToArgs(nested),
        object[] items => items.Select(Unwrap).ToArray(),
        _ => value,
    };
}
