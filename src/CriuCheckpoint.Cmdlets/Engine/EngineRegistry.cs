using System.Security.Cryptography;

namespace CriuCheckpoint.Engine;

/// <summary>
/// Engines known on this host: one run directory each under a shared root, so engines outlive the pwsh
/// session that started them and any session finds them. Root: $CRIUCHECKPOINT_HOME, else
/// /run/criu-checkpoint for root, else $XDG_RUNTIME_DIR/criu-checkpoint, else /tmp/criu-checkpoint-UID.
/// </summary>
public sealed class EngineRegistry
{
    public EngineRegistry(string root)
    {
        Root = root;
    }

    public string Root { get; }

    public string EnginesDirectory => Path.Combine(Root, "engines");

    public static EngineRegistry Default => new(DefaultRoot());

    public static string DefaultRoot()
    {
        var configured = Environment.GetEnvironmentVariable("CRIUCHECKPOINT_HOME");
        if (!string.IsNullOrEmpty(configured))
        {
            return configured;
        }

        if (Environment.UserName == "root")
        {
            return "/run/criu-checkpoint";
        }

        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return string.IsNullOrEmpty(runtime) ? $"/tmp/criu-checkpoint-{Environment.UserName}" : Path.Combine(runtime, "criu-checkpoint");
    }

    /// <summary>Creates a private run directory and records the engine in it.</summary>
    public EngineRecord Create(EngineSpec spec, string? name, StartSource source)
    {
        Directory.CreateDirectory(EnginesDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var id = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        var runDirectory = Path.Combine(EnginesDirectory, id);
        Directory.CreateDirectory(runDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var record = new EngineRecord
        {
            Id = id,
            Name = string.IsNullOrEmpty(name) ? $"{spec.Backend}-{id[..6]}" : name,
            Spec = spec,
            Python = spec.Python,
            ConfigHash = ConfigHash.Compute(spec),
            RunDirectory = runDirectory,
            CreatedAt = DateTimeOffset.UtcNow,
            StartedFrom = source,
        };
        Save(record);
        return record;
    }

    public void Save(EngineRecord record) =>
        RunDirectory.WriteJsonAtomic(new RunDirectory(record.RunDirectory).RecordFile, record);

    public IReadOnlyList<EngineRecord> List()
    {
        if (!Directory.Exists(EnginesDirectory))
        {
            return Array.Empty<EngineRecord>();
        }

        var records = new List<EngineRecord>();
        foreach (var dir in Directory.EnumerateDirectories(EnginesDirectory))
        {
            // A directory without a complete record is an engine being created right now, or debris: skip it.
            if (RunDirectory.ReadJson<EngineRecord>(new RunDirectory(dir).RecordFile) is { } record)
            {
                records.Add(record);
            }
        }

        return records.OrderBy(r => r.CreatedAt).ToArray();
    }

    /// <summary>Finds engines by name or id (wildcards allowed in names).</summary>
    public IReadOnlyList<EngineRecord> Find(string nameOrId)
    {
        var pattern = NamePattern.ToRegex(nameOrId);
        return List().Where(r => r.Id == nameOrId || pattern.IsMatch(r.Name)).ToArray();
    }

    public void Remove(EngineRecord record)
    {
        if (Directory.Exists(record.RunDirectory))
        {
            Directory.Delete(record.RunDirectory, recursive: true);
        }
    }
}
