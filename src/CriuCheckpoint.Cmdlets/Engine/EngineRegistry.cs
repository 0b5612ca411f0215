using System.Security.Cryptography;

namespace CriuCheckpoint.Engine;

/// <summary>
/// Engines known on this host: one run directory each under a shared root, so engines outlive the pwsh
/// session that started them and any session finds them. Root: $CRIUCHECKPOINT_HOME, else
/// /run/criu-checkpoint for root, else $XDG_RUNTIME_DIR/criu-checkpoint, else /tmp/criu-checkpoint-UID.
/// </summary>
internal sealed class EngineRegistry
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public EngineRegistry(string root)
    {
        Root = root;
    }

    public string Root { get; }

    /// <summary>Run directories of engines started cold.</summary>
    public string EnginesDirectory => Path.Combine(Root, "engines");

    /// <summary>
    /// Run directories of restored engines. Kept apart from engines/ because a restore mounts a private tmpfs over
    /// the checkpointed engine's engines/ folder inside its mount namespace, which must not hide its own directory.
    /// </summary>
    public string ReplicasDirectory => Path.Combine(Root, "replicas");

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
    public EngineRecord Create(EngineSpec spec, string? name, StartSource source, string? configHash = null)
    {
        var parent = source == StartSource.Checkpoint ? ReplicasDirectory : EnginesDirectory;
        Directory.CreateDirectory(Root, Private);
        Directory.CreateDirectory(parent, Private);
        var id = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        var runDirectory = Path.Combine(parent, id);
        Directory.CreateDirectory(runDirectory, Private);
        var record = new EngineRecord
        {
            Id = id,
            Name = string.IsNullOrEmpty(name) ? $"{spec.Backend}-{id[..6]}" : name,
            Spec = spec,
            Python = spec.Python,
            ConfigHash = configHash ?? ConfigHash.Compute(spec),
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
        var records = new List<EngineRecord>();
        foreach (var dir in new[] { EnginesDirectory, ReplicasDirectory }.Where(Directory.Exists).SelectMany(Directory.EnumerateDirectories))
        {
            // A directory without a complete record is an engine being created right now, or debris: skip it.
            if (RunDirectory.ReadJson<EngineRecord>(new RunDirectory(dir).RecordFile) is { } record)
            {
                records.Add(record);
            }
        }

        return records.OrderBy(r => r.CreatedAt).ToArray();
    }

    public void Remove(EngineRecord record)
    {
        if (Directory.Exists(record.RunDirectory))
        {
            Directory.Delete(record.RunDirectory, recursive: true);
        }
    }
}
