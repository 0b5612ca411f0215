using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Checks that fail fast, with a named cause, before anything is changed.</summary>
internal static class Preflight
{
    private const int CapSysAdmin = 21;
    private const int CapCheckpointRestore = 40;

    /// <summary>CRIU needs root, or CAP_SYS_ADMIN with CAP_CHECKPOINT_RESTORE.</summary>
    public static void EnsurePrivileges()
    {
        if (HostInspector.IsRoot() || HasCapabilities(CapSysAdmin, CapCheckpointRestore))
        {
            return;
        }

        throw new CriuCheckpointException(ErrorIds.InsufficientPrivilege, FailureKind.PermissionDenied,
            "Checkpoint and restore need root, or CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE (e.g. sudo pwsh, or setcap on the pwsh binary).");
    }

    public static bool HasCapabilities(params int[] capabilities)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        var effective = line is null ? 0UL : Convert.ToUInt64(line["CapEff:".Length..].Trim(), 16);
        return capabilities.All(c => (effective & (1UL << c)) != 0);
    }

    /// <summary>
    /// The image holds roughly the resident memory of the tree plus what the driver moves from the GPU into it;
    /// refuse when the store cannot take it.
    /// </summary>
    public static void EnsureSpace(string storePath, IEnumerable<int> processIds, long gpuBytes)
    {
        var needed = processIds.Sum(ResidentBytes) + gpuBytes + (64L << 20);
        var available = new DriveInfo(storePath).AvailableFreeSpace;
        if (available < needed)
        {
            throw new CriuCheckpointException(ErrorIds.InsufficientSpace, FailureKind.ResourceUnavailable,
                $"The store {storePath} has {available >> 20} MiB free; the checkpoint needs about {needed >> 20} MiB.", storePath);
        }
    }

    public static long ResidentBytes(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]) * 1024;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return 0;
        }
    }
}
