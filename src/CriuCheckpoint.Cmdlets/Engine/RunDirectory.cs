using System.Text.Json;
using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;
using System.Text.Json.Serialization;

namespace CriuCheckpoint.Engine;

/// <summary>
/// The files of one engine's run directory: what the launcher records (engine.json, pid), what the engine host writes
/// (ready.json, failed.json, its log, the resume FIFO) and the link's keys. See docs/protocol.md, "Startup handshake"
/// and "Security".
/// </summary>
internal sealed class RunDirectory
{
    /// <summary>Key files: the owner's alone, since whoever reads the client secret key can talk to the engine.</summary>
    private const UnixFileMode KeyFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

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

    /// <summary>The cold-start phase the engine host is in, which it names as each one begins.</summary>
    public string PhaseFile => System.IO.Path.Combine(Path, "phase.json");

    public string ResumeFifo => System.IO.Path.Combine(Path, "resume.fifo");

    /// <summary>Where a resuming engine picks up its listening socket; the resume message names it relative to the run directory.</summary>
    public const string HandoverSocketName = "handover.sock";

    public string HandoverSocket => System.IO.Path.Combine(Path, HandoverSocketName);

    /// <summary>The engine's server public key, written by the engine whenever it binds.</summary>
    public string ServerPublicKeyFile => System.IO.Path.Combine(Path, "server.public");

    /// <summary>The one client public key the engine lets in, read by the engine whenever it binds.</summary>
    public string ClientPublicKeyFile => System.IO.Path.Combine(Path, "client.public");

    public string ClientSecretKeyFile => System.IO.Path.Combine(Path, "client.secret");

    public ReadyInfo? ReadReady() => ReadJson<ReadyInfo>(ReadyFile);

    /// <summary>What a client needs to reach the engine; read after ready.json, which the engine writes after its key.</summary>
    public LinkKeys ReadLinkKeys()
    {
        try
        {
            return new LinkKeys(File.ReadAllText(ServerPublicKeyFile).Trim(), File.ReadAllText(ClientSecretKeyFile).Trim());
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw LinkKeysUnavailable(FailureKind.ObjectNotFound,
                $"{Path} holds no link keys ({e.Message}): the engine was started by a module that spoke an older protocol. Stop it and start it again.", e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw LinkKeysUnavailable(FailureKind.PermissionDenied, $"The link keys in {Path} cannot be read: {e.Message}", e);
        }
        catch (FormatException e)
        {
            throw LinkKeysUnavailable(FailureKind.InvalidData, $"The link keys in {Path} are damaged: {e.Message}", e);
        }
    }

    /// <summary>
    /// A new client keypair for the engine to let in from its next bind on (the previous one is let in no more);
    /// written before the resume message that makes the engine read it.
    /// </summary>
    public void WriteClientKeys(CurveKeyPair client)
    {
        WritePrivateAtomic(ClientSecretKeyFile, client.SecretKey);
        WritePrivateAtomic(ClientPublicKeyFile, client.PublicKey);
    }

    public FailedInfo? ReadFailed() => ReadJson<FailedInfo>(FailedFile);

    public string? ReadPhase() => ReadJson<PhaseInfo>(PhaseFile)?.Phase;

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
    public string LogTail(int lines = 25) => Tail(LogFile, lines);

    /// <summary>The last lines of a log file; empty where there is none.</summary>
    internal static string Tail(string file, int lines = 25)
    {
        try
        {
            var all = File.ReadAllLines(file);
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

    private CriuCheckpointException LinkKeysUnavailable(FailureKind kind, string message, Exception inner) =>
        new(ErrorIds.LinkKeysUnavailable, kind, message, Path, inner);

    /// <summary>A key file: 0600 from its creation, through a temporary file and a rename, so readers see all of it or none.</summary>
    private static void WritePrivateAtomic(string file, string text)
    {
        var temp = file + ".tmp";
        File.Delete(temp);
        using (var stream = new FileStream(temp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = KeyFileMode }))
        {
            stream.Write(System.Text.Encoding.ASCII.GetBytes(text + "\n"));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, file, overwrite: true);
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

    /// <summary>After a resume with released weights: "holder" when they were mapped from a weight holder, "files" when read.</summary>
    public string? WeightsFrom { get; set; }
}

internal sealed class PhaseInfo
{
    public string Phase { get; set; } = string.Empty;
}

internal sealed class FailedInfo
{
    public string Code { get; set; } = string.Empty;

    public string Message { get; set; } = string.Empty;
}
