using System.Text.Json;
using CriuCheckpoint.Native;
using System.Text.Json.Serialization;

namespace CriuCheckpoint.Engine;

/// <summary>
/// The files of one engine's run directory: what the launcher records (engine.json, pid) and what the engine
/// host writes (ready.json, failed.json, its log, the resume FIFO). See docs/protocol.md, "Startup handshake".
/// </summary>
internal sealed class RunDirectory
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public RunDirectory(string path) => Path = path;

    public string Path { get; }

    public string RecordFile => System.IO.Path.Combine(Path, "engine.json");

    public string PidFile => System.IO.Path.Combine(Path, "engine.pid");

    public string ReadyFile => System.IO.Path.Combine(Path, "ready.json");

    public string FailedFile => System.IO.Path.Combine(Path, "failed.json");

    public string LogFile => System.IO.Path.Combine(Path, "engine.log");

    public string ResumeFifo => System.IO.Path.Combine(Path, "resume.fifo");

    /// <summary>Where a resuming engine picks up its listening socket; the resume message names it relative to the run directory.</summary>
    public const string HandoverSocketName = "handover.sock";

    public string HandoverSocket => System.IO.Path.Combine(Path, HandoverSocketName);

    public ReadyInfo? ReadReady() => ReadJson<ReadyInfo>(ReadyFile);

    public FailedInfo? ReadFailed() => ReadJson<FailedInfo>(FailedFile);

    /// <summary>Removes ready.json; an engine that Stop-VllmEngine removed has no run directory left to hold one.</summary>
    public void RemoveReady()
    {
        if (Directory.Exists(Path))
        {
            File.Delete(ReadyFile);
        }
    }

    public int? ReadPid() => SessionProcess.ReadPid(PidFile);

    /// <summary>The last lines of the engine log, for error messages.</summary>
    public string LogTail(int lines = 25)
    {
        try
        {
            var all = File.ReadAllLines(LogFile);
            return string.Join(Environment.NewLine, all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return string.Empty;
        }
    }

    internal static T? ReadJson<T>(string file)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(file), Json);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Writes through a temporary file and rename, so readers never see half a file.</summary>
    internal static void WriteJsonAtomic<T>(string file, T value)
    {
        var temp = file + ".tmp";
        // 0600: records and manifests are read by the module as their owner, by no one else.
        File.WriteAllText(temp, JsonSerializer.Serialize(value, Json));
        File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temp, file, overwrite: true);
    }
}

internal sealed class ReadyInfo
{
    public string Endpoint { get; set; } = string.Empty;

    /// <summary>Startup phases in order of execution, in seconds.</summary>
    public Dictionary<string, double> Phases { get; set; } = new();
}

internal sealed class FailedInfo
{
    public string Code { get; set; } = string.Empty;

    public string Message { get; set; } = string.Empty;
}
