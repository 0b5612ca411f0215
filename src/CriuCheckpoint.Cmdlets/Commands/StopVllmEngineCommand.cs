using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Stops engines: graceful shutdown, then SIGTERM/SIGKILL of the whole tree by PID; removes the run directory.</summary>
[Cmdlet(VerbsLifecycle.Stop, "VllmEngine", SupportsShouldProcess = true, DefaultParameterSetName = ByEngine)]
[OutputType(typeof(EngineInfo))]
public sealed class StopVllmEngineCommand : CriuCheckpointCmdlet
{
    private const string ByEngine = "Engine";
    private const string ByName = "Name";
    private const string ById = "Id";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = ByEngine)]
    [ValidateNotNull]
    public EngineInfo[] Engine { get; set; } = Array.Empty<EngineInfo>();

    [Parameter(Mandatory = true, ParameterSetName = ByName)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ById)]
    [ValidateNotNullOrEmpty]
    public string[] Id { get; set; } = Array.Empty<string>();

    /// <summary>Seconds the engine gets to exit after the shutdown request before its processes are signalled.</summary>
    [Parameter]
    [ValidateRange(0, 3600)]
    public int GracePeriod { get; set; } = 10;

    /// <summary>Outputs each stopped engine (State = Stopped).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var record in Targets())
        {
            if (!ShouldProcess($"engine {record.Name} ({record.Id}, PID {record.RootProcessId})", "Stop"))
            {
                continue;
            }

            try
            {
                var elapsed = Run((observer, token) =>
                    new EngineStopper(Registry, observer).StopAsync(record, TimeSpan.FromSeconds(GracePeriod), token));
                WriteVerbose($"Engine {record.Name} stopped in {elapsed.TotalSeconds:0.000} s.");
                if (PassThru)
                {
                    WriteObject(Run((_, token) => new EngineInspector(Registry).DescribeAsync(record, probe: false, TimeSpan.Zero, token)));
                }
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
            }
        }
    }

    private IEnumerable<EngineRecord> Targets()
    {
        switch (ParameterSetName)
        {
            case ByEngine:
                return Engine.Select(e => e.Record);
            case ById:
                return Id.SelectMany(id => Lookup(id, r => r.Id == id));
            default:
                return Name.SelectMany(name => Lookup(name, r => NamePattern.ToRegex(name).IsMatch(r.Name)));
        }
    }

    private IEnumerable<EngineRecord> Lookup(string key, Func<EngineRecord, bool> match)
    {
        var found = Registry.List().Where(match).ToArray();
        if (found.Length == 0 && !NamePattern.HasWildcards(key))
        {
            WriteFailure(new CriuCheckpointException(ErrorIds.EngineNotFound, FailureKind.ObjectNotFound,
                $"No engine '{key}' is known in {Registry.Root}.", key));
        }

        return found;
    }
}
