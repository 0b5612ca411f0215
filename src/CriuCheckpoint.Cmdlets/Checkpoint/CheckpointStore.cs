using System.Security.Cryptography;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// A directory of checkpoints, one per config hash: &lt;store&gt;/&lt;hash&gt;/{manifest.json, engine.log, images/}.
/// Checkpoints are built in a staging directory inside the store and published by one atomic rename, so nothing
/// half-written is ever visible; when two savers race, the first rename wins and the loser adopts the winner.
/// </summary>
internal sealed class CheckpointStore
{
    private const string StagingPrefix = ".staging-";
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public CheckpointStore(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }

    public string CheckpointPath(string configHash) => System.IO.Path.Combine(Path, configHash);

    public static string ImagesPath(string checkpointPath) => System.IO.Path.Combine(checkpointPath, "images");

    public static string LogSnapshotPath(string checkpointPath) => System.IO.Path.Combine(checkpointPath, "engine.log");

    public static string ManifestPath(string checkpointPath) => System.IO.Path.Combine(checkpointPath, CheckpointManifest.FileName);

    /// <summary>A fresh name for a directory inside the store, hidden from listings like a staging directory.</summary>
    public string NewStagingName(string configHash) =>
        System.IO.Path.Combine(Path, $"{StagingPrefix}{configHash}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}");

    /// <summary>A new private staging directory inside the store (same filesystem, so publishing is a rename).</summary>
    public string CreateStaging(string configHash)
    {
        EnsureExists();
        var staging = NewStagingName(configHash);
        Directory.CreateDirectory(staging, Private);
        Directory.CreateDirectory(ImagesPath(staging), Private);
        return staging;
    }

    /// <summary>Renames staging to its final name; false when another saver published the same hash first.</summary>
    public bool TryPublish(string staging, string configHash)
    {
        try
        {
            Directory.Move(staging, CheckpointPath(configHash));
            return true;
        }
        catch (IOException) when (Directory.Exists(CheckpointPath(configHash)))
        {
            return false;
        }
    }

    /// <summary>A new file readable and writable by its owner only (0600).</summary>
    public static FileStream CreatePrivateFile(string path) =>
        new(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile });

    /// <summary>Every file under <paramref name="directory"/> 0600, every folder (itself too) 0700.</summary>
    public static void MakePrivate(string directory)
    {
        File.SetUnixFileMode(directory, Private);
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(entry, Directory.Exists(entry) ? Private : PrivateFile);
        }
    }

    public static void DeleteStaging(string staging)
    {
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>A staging directory older than this belongs to a save that died (a killed pwsh, a reboot): no save runs that long.</summary>
    public static readonly TimeSpan StagingMaxAge = TimeSpan.FromHours(1);

    /// <summary>
    /// Creates the store if needed and refuses it unless only root and the caller can write on the way to it; the
    /// folders that exist are checked first, so nothing is created under a folder another user could write.
    /// </summary>
    public void EnsureExists()
    {
        var existing = Path;
        while (!Directory.Exists(existing))
        {
            existing = System.IO.Path.GetDirectoryName(existing)!;
        }

        StoreTrust.EnsureStore(existing);
        Directory.CreateDirectory(Path, Private);
        StoreTrust.EnsureStore(Path);
    }

    /// <summary>Removes the staging directories last written before <paramref name="olderThan"/>; returns how many.</summary>
    public int SweepStaging(DateTimeOffset olderThan)
    {
        var swept = 0;
        foreach (var staging in Directory.Exists(Path) ? Directory.EnumerateDirectories(Path, StagingPrefix + "*") : Enumerable.Empty<string>())
        {
            if (Directory.GetLastWriteTimeUtc(staging) < olderThan.UtcDateTime)
            {
                DeleteStaging(staging);
                swept++;
            }
        }

        return swept;
    }

    /// <summary>Published checkpoint directories (those with a manifest); staging directories are never listed.</summary>
    public IEnumerable<string> CheckpointDirectories() =>
        Directory.Exists(Path)
            ? Directory.EnumerateDirectories(Path)
                .Where(d => !System.IO.Path.GetFileName(d).StartsWith(StagingPrefix, StringComparison.Ordinal) && File.Exists(ManifestPath(d)))
                .Order(StringComparer.Ordinal)
            : Enumerable.Empty<string>();

    public IReadOnlyList<EngineCheckpoint> List() =>
        CheckpointDirectories().Select(d => Open(d)).OrderBy(c => c.CreatedAt).ToArray();

    public EngineCheckpoint? Find(string configHash) =>
        File.Exists(ManifestPath(CheckpointPath(configHash))) ? Open(CheckpointPath(configHash)) : null;

    /// <summary>Reads a checkpoint directory; a missing, unreadable or invalid manifest is a corrupt checkpoint.</summary>
    public static EngineCheckpoint Open(string checkpointPath, IReadOnlyList<CompatibilityIssue>? issues = null) =>
        Open(checkpointPath, checkpointPath, issues);

    /// <summary>Reads a checkpoint held open after its trust checks, through its descriptor.</summary>
    public static EngineCheckpoint Open(TrustedCheckpoint trusted) => Open(trusted.Path, trusted.ReadPath, issues: null);

    private static EngineCheckpoint Open(string checkpointPath, string readPath, IReadOnlyList<CompatibilityIssue>? issues)
    {
        CheckpointManifest? manifest;
        try
        {
            manifest = RunDirectory.ReadJson<CheckpointManifest>(ManifestPath(readPath));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData,
                $"The manifest of checkpoint {checkpointPath} is not valid JSON: {e.Message}", checkpointPath, e);
        }

        if (manifest is null)
        {
            throw new CriuCheckpointException(Directory.Exists(checkpointPath) ? ErrorIds.CheckpointCorrupt : ErrorIds.CheckpointNotFound,
                Directory.Exists(checkpointPath) ? FailureKind.InvalidData : FailureKind.ObjectNotFound,
                Directory.Exists(checkpointPath) ? $"{checkpointPath} has no {CheckpointManifest.FileName}: it is not a checkpoint." : $"No checkpoint at {checkpointPath}.",
                checkpointPath);
        }

        ManifestValidation.Validate(manifest, checkpointPath);
        var timings = PhaseTimings.FromSeconds(manifest.Timings, manifest.Timings.Values.Sum());
        return new EngineCheckpoint
        {
            Path = checkpointPath,
            ConfigHash = manifest.ConfigHash,
            CreatedAt = manifest.CreatedAt,
            Backend = manifest.Spec.Backend,
            Model = manifest.Spec.Model,
            EngineName = manifest.EngineName,
            SizeBytes = DirectorySize(readPath),
            GpuBytes = manifest.GpuBytes,
            ProcessTree = manifest.ProcessTree,
            Timings = timings,
            Manifest = manifest,
            CompatibilityIssues = issues,
        };
    }

    public static void Remove(string checkpointPath) => Directory.Delete(checkpointPath, recursive: true);

    public static long DirectorySize(string path) =>
        Directory.Exists(path) ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0;
}
