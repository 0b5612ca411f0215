using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Commands;

/// <summary>Lists the processes that use the GPUs of this host, with their GPU memory, CUDA state and engine.</summary>
[Cmdlet(VerbsCommon.Get, "GpuProcess", DefaultParameterSetName = ByEngine)]
[OutputType(typeof(GpuProcess))]
public sealed class GetGpuProcessCommand : OneEngineCmdlet
{
    private GpuInventory? inventory;
    private bool driverMissing;

    /// <summary>Only the processes of this engine's tree: an Engine object, or its name or id.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ByEngine)]
    [Alias("EngineName", "Name")]
    [ArgumentCompleter(typeof(EngineNameCompleter))]
    [ValidateNotNull]
    [SupportsWildcards]
    public EngineIdentity? Engine { get; set; }


    [Parameter]
    [Alias("PID")]
    [ValidateNotNullOrEmpty]
    public int[]? ProcessId { get; set; }

    protected override void ProcessRecord()
    {
        // Without a driver every engine of the pipeline would fail alike: say it once.
        if (driverMissing)
        {
            return;
        }

        EngineInfo? engine = null;
        var (identity, key) = GivenEngine(Engine, Id);
        if (identity is not null)
        {
            engine = ResolveEngine(identity, key);
            if (engine is null)
            {
                return;
            }
        }

        try
        {
            var processes = Run((_, _) =>
            {
                inventory ??= GpuInventory.ForHost();
                return Task.FromResult(new GpuProcessQuery(Registry, inventory).Find(engine?.Record, ProcessId));
            });
            WriteObject(processes, enumerateCollection: true);
        }
        catch (CriuCheckpointException e)
        {
            driverMissing = e.ErrorId == ErrorIds.GpuDriverNotFound;
            WriteFailure(e);
        }
    }
}
