using System.Runtime.InteropServices;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Reads the facts of this host that decide whether a checkpoint made elsewhere can be restored here.</summary>
internal static class HostInspector
{
    public static HostFacts Collect(string criuVersion, string python) => new()
    {
        Hostname = Environment.MachineName,
        Architecture = RuntimeInformation.OSArchitecture.ToString(),
        Kernel = ReadFirstLine("/proc/sys/kernel/osrelease"),
        CpuModel = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? string.Empty,
        CriuVersion = criuVersion,
        Python = python,
        ModuleVersion = typeof(HostInspector).Assembly.GetName().Version?.ToString(3) ?? string.Empty,
    };

    /// <summary>Every regular file mapped by the processes, with its size now (read from /proc/PID/map_files' targets).</summary>
    public static List<MappedFile> MappedFiles(IEnumerable<int> processIds)
    {
        var files = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var pid in processIds)
        {
            IEnumerable<string> lines;
            try
            {
                lines = File.ReadAllLines($"/proc/{pid}/maps");
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
            {
                continue;
            }

            foreach (var line in lines)
            {
                // address perms offset dev inode path: a path starting with '/' names a file (not [heap], [vdso]...).
                var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length == 6 && fields[5].StartsWith('/') && !fields[5].EndsWith(" (deleted)", StringComparison.Ordinal)
                    && !fields[5].StartsWith("/dev/", StringComparison.Ordinal) && File.Exists(fields[5]))
                {
                    files[fields[5]] = new FileInfo(fields[5]).Length;
                }
            }
        }

        return files.Select(f => new MappedFile { Path = f.Key, Size = f.Value }).ToList();
    }

    public static bool IsRoot() => FileOwner.EffectiveUserId == 0;

    private static string ReadFirstLine(string path) => File.ReadLines(path).FirstOrDefault()?.Trim() ?? string.Empty;
}
