using System.Management.Automation;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>Checkpoints a serving engine's whole process tree into a store, published atomically under its config hash.</summary>
[Cmdlet(VerbsData.Save, "EngineCheckpoint", SupportsShouldProcess = true, DefaultParameterSetName = ByEngine)]
[OutputType(typeof(EngineCheckpoint))]
public sealed class SaveEngineCheckpointCommand : OneEngineCmdlet
{
    /// <summary>The engine: an Engine object, or its name or id.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByEngine)]
    [Alias("EngineName", "Name")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNull]
    [SupportsWildcards]
    public EngineIdentity Engine { get; set; } = null!;


    /// <summary>The checkpoint store: a directory holding one checkpoint per config hash.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [Alias("Store", "CheckpointStore")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    [Parameter]
    public SwitchParameter LeaveRunning { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Abort requests in flight instead of letting them finish before the dump.</summary>
    [Parameter]
    public SwitchParameter AbortInFlight { get; set; }

    /// <summary>
    /// Seconds in-flight requests get to finish before they are aborted. A wait of its own beside -TimeoutSec: when it
    /// runs out the save goes on (the requests are aborted), where -TimeoutSec failing stops the save.
    /// </summary>
    [Parameter]
    [ValidateRange(0, 86400)]
    public int DrainTimeout { get; set; } = 30;

    /// <summary>Seconds criu dump may run before it is killed and the save rolled back (the engine serves on).</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 600;

    /// <summary>Release nothing before the dump: the KV cache (and weights read from source) go into the image.</summary>
    [Parameter]
    public SwitchParameter KeepCaches { get; set; }

    /// <summary>GPU processes checkpointed by the driver at once; 0 for all of them.</summary>
    [Parameter]
    [ValidateRange(0, 1024)]
    public int CudaThrottleLimit { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CriuPath { get; set; }

    /// <summary>Take no canary at the save: the manifest records none, and no restore of it can compare one.</summary>
    [Parameter]
    public SwitchParameter SkipCanary { get; set; }

    /// <summary>With -LeaveRunning, also outputs the engine (serving again on a new endpoint).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var (identity, key) = GivenEngine(Engine);
        if (ResolveEngine(identity, key) is not { } engine)
        {
            return;
        }

        var store = new CheckpointStore(GetUnresolvedProviderPathFromPSPath(Path));
        var action = LeaveRunning ? "Checkpoint (engine keeps serving)" : "Checkpoint (engine ends after the dump)";
        if (!ShouldProcess($"engine {engine.Name} ({engine.Id}) into {store.Path}", action))
        {
            return;
        }

        try
        {
            var options = new SaveOptions
            {
                LeaveRunning = LeaveRunning,
                Force = Force,
                CriuPath = CriuPath,
                DrainTimeout = TimeSpan.FromSeconds(DrainTimeout),
                DumpTimeout = TimeSpan.FromSeconds(TimeoutSec),
                AbortInFlight = AbortInFlight,
                KeepCaches = KeepCaches,
                CudaThrottleLimit = CudaThrottleLimit,
                SkipCanary = SkipCanary,
            };
            var result = Run((observer, token) => new CheckpointSaver(Services, observer).SaveAsync(engine, store, options, token));
            WriteTimings($"Checkpoint {result.Checkpoint.Path}", result.Checkpoint.Timings);
            WriteObject(result.Checkpoint);
            if (PassThru && result.Engine is not null)
            {
                WriteObject(result.Engine);
            }
        }
        catch (CriuCheckpointException e)
        {
            WriteFailure(e);
        }
    }
}
