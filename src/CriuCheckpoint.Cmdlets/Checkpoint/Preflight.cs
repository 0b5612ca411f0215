using System.Globalization;
using CriuCheckpoint.Core;

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
    /// The memory of a process that a dump writes out: anonymous and shared memory (RssAnon + RssShmem). File-backed
    /// pages are read back from their files at restore and device mappings are not memory at all, so neither counts;
    /// GPU memory that the driver has checkpointed sits in anonymous memory by then and does.
    /// </summary>
    public static long DumpedBytes(int pid)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/status")
                .Where(l => l.StartsWith("RssAnon:", StringComparison.Ordinal) || l.StartsWith("RssShmem:", StringComparison.Ordinal))
                .Sum(l => long.Parse(l[(l.IndexOf(':') + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return 0;
        }
    }
}
