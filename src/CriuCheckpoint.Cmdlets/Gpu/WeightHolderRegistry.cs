using System.Security.Cryptography;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// The weight holders of this host: one run directory each under the engine registry's root (holders/), so any session
/// finds them and a restore in any session can use them.
/// </summary>
internal sealed class WeightHolderRegistry
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private readonly ProcFs procFs;

    public WeightHolderRegistry(string root, ProcFs? procFs = null)
    {
        Root = root;
        this.procFs = procFs ?? ProcFs.Host;
    }

    public string Root { get; }

    public string HoldersDirectory => Path.Combine(Root, "holders");

    public static WeightHolderRegistry For(EngineRegistry engines) => new(engines.Root);

    /// <summary>Creates a private run directory and records the holder in it.</summary>
    public WeightHolderRecord Create(string model, int gpuIndex, string python, string? name)
    {
        Directory.CreateDirectory(Root, Private);
        Directory.CreateDirectory(HoldersDirectory, Private);
        var id = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        var runDirectory = Path.Combine(HoldersDirectory, id);
        Directory.CreateDirectory(runDirectory, Private);
        var record = new WeightHolderRecord
        {
            Id = id,
            Name = string.IsNullOrEmpty(name) ? $"holder-{id[..6]}" : name,
            Model = model,
            GpuIndex = gpuIndex,
            Python = python,
            RunDirectory = runDirectory,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        Save(record);
        return record;
    }

    public void Save(WeightHolderRecord record) =>
        Engine.RunDirectory.WriteJsonAtomic(new HolderRunDirectory(record.RunDirectory).RecordFile, record);

    /// <summary>Every holder recorded here, oldest first, with its state now.</summary>
    public IReadOnlyList<WeightHolder> List()
    {
        if (!Directory.Exists(HoldersDirectory))
        {
            return Array.Empty<WeightHolder>();
        }

        return Directory.EnumerateDirectories(HoldersDirectory)
            .Select(dir => Engine.RunDirectory.ReadJson<WeightHolderRecord>(new HolderRunDirectory(dir).RecordFile))
            .OfType<WeightHolderRecord>()
            .Select(Describe)
            .OrderBy(h => h.CreatedAt)
            .ToArray();
    }

    public WeightHolder Describe(WeightHolderRecord record)
    {
        var alive = record.RootProcessId > 1 && procFs.IsAlive(record.RootProcessId, record.RootStartTime);
        var ready = alive ? new HolderRunDirectory(record.RunDirectory).ReadReady() : null;
        return new WeightHolder
        {
            Id = record.Id,
            Name = record.Name,
            Model = record.Model,
            GpuIndex = record.GpuIndex,
            GpuUuid = ready?.GpuUuid,
            State = !alive ? WeightHolderState.Exited : ready is null ? WeightHolderState.Loading : WeightHolderState.Ready,
            WeightBytes = ready?.Bytes ?? 0,
            Tensors = ready?.Layout.Count ?? 0,
            LoadSeconds = ready?.LoadSeconds ?? 0,
            ProcessId = record.RootProcessId,
            RunDirectory = record.RunDirectory,
            CreatedAt = record.CreatedAt,
            Record = record,
            Ready = ready,
        };
    }

    public void Remove(WeightHolderRecord record)
    {
        if (Directory.Exists(record.RunDirectory))
        {
            Directory.Delete(record.RunDirectory, recursive: true);
        }
    }
}
