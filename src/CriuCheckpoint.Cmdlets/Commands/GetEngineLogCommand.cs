using System.Management.Automation;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Commands;

/// <summary>Writes the lines of engines' logs (engine.log in each run directory), and with -Wait the lines they go on writing.</summary>
[Cmdlet(VerbsCommon.Get, "EngineLog")]
[OutputType(typeof(string))]
public sealed class GetEngineLogCommand : EnginesCmdlet
{
    private readonly List<(EngineInfo Engine, EngineLog Log)> followed = new();

    /// <summary>Only the last lines of each log; all of them when omitted.</summary>
    [Parameter]
    [Alias("Last")]
    [ValidateRange(0, int.MaxValue)]
    public int? Tail { get; set; }

    /// <summary>Then follows each log, writing new lines as they come, until Ctrl+C or every engine has ended.</summary>
    [Parameter]
    public SwitchParameter Wait { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var engine in GivenEngines())
        {
            EngineLog log;
            try
            {
                log = EngineLog.Open(engine.LogPath, engine.Name);
            }
            catch (CriuCheckpointException e)
            {
                WriteFailure(e);
                continue;
            }

            var lines = log.ReadLast(Tail);
            WriteLines(engine, Wait ? lines : lines.Concat(log.ReadRest()));
            if (Wait)
            {
                followed.Add((engine, log));
            }
            else
            {
                log.Dispose();
            }
        }
    }

    protected override void EndProcessing()
    {
        if (followed.Count > 0)
        {
            var inspector = new EngineInspector(Registry);
            Run((_, token) => Task.WhenAll(followed.Select(f =>
                f.Log.FollowAsync(() => inspector.IsAlive(f.Engine.Record), line => PostObject(Line(f.Engine, line)), token))));
        }

        base.EndProcessing();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var (_, log) in followed)
            {
                log.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    private void WriteLines(EngineInfo engine, IEnumerable<string> lines)
    {
        foreach (var line in lines)
        {
            WriteObject(Line(engine, line));
        }
    }

    /// <summary>The line as a string that also says whose it is, for logs of several engines read together.</summary>
    private static PSObject Line(EngineInfo engine, string line)
    {
        var output = new PSObject(line);
        output.Properties.Add(new PSNoteProperty("EngineName", engine.Name));
        output.Properties.Add(new PSNoteProperty("EngineId", engine.Id));
        return output;
    }
}
