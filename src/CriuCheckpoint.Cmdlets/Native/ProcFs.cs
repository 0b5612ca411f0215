using System.Globalization;

namespace CriuCheckpoint.Native;

/// <summary>Reads process facts from a procfs mount (the host's /proc by default; tests point it elsewhere).</summary>
internal sealed class ProcFs
{
    public static ProcFs Host { get; } = new("/proc");

    public ProcFs(string root) => Root = root;

    public string Root { get; }

    public IEnumerable<int> ProcessIds()
    {
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                yield return pid;
            }
        }
    }

    /// <summary>The parsed /proc/PID/stat, or null when the process is gone.</summary>
    public ProcStat? ReadStat(int pid)
    {
        var text = TryRead(Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture), "stat"));
        return text is null ? null : ProcStat.Parse(text);
    }

    /// <summary>The PIDs of the process in each nested PID namespace, outermost first (the NSpid line).</summary>
    public IReadOnlyList<int> ReadNamespacePids(int pid)
    {
        var text = TryRead(Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture), "status"));
        if (text is null)
        {
            return Array.Empty<int>();
        }

        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("NSpid:", StringComparison.Ordinal))
            {
                return line["NSpid:".Length..]
                    .Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
                    .Select(p => int.Parse(p, CultureInfo.InvariantCulture))
                    .ToArray();
            }
        }

        return new[] { pid };
    }

    public string ReadCommandLine(int pid)
    {
        var text = TryRead(Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture), "cmdline"));
        return text is null ? string.Empty : text.TrimEnd('\0').Replace('\0', ' ');
    }

    /// <summary>
    /// What the process's open file descriptors point at (the /proc/PID/fd links: paths, or "socket:[…]" and the like);
    /// empty when the process is gone or its descriptors are not this user's to read.
    /// </summary>
    public IReadOnlyList<string> ReadFileDescriptorTargets(int pid)
    {
        var targets = new List<string>();
        try
        {
            foreach (var link in Directory.EnumerateFileSystemEntries(Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture), "fd")))
            {
                // A descriptor closed since the listing has no link any more.
                if (new FileInfo(link).LinkTarget is { } target)
                {
                    targets.Add(target);
                }
            }
        }
        catch (Exception e) when (e is DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            // Gone, or another user's process: nothing to report.
        }

        return targets;
    }

    /// <summary>True when the process exists, is not a zombie and (when given) started at the recorded time.</summary>
    /// <summary>
    /// The bytes the process has read through read() and its kin (rchar of /proc/PID/io), whether from a disk or the page
    /// cache, with those of its reaped children; 0 when the process is gone or its counters are not this user's to read.
    /// </summary>
    public long ReadBytesRead(int pid)
    {
        var text = TryRead(Path.Combine(Root, pid.ToString(CultureInfo.InvariantCulture), "io"));
        var line = text?.Split('\n').FirstOrDefault(l => l.StartsWith("rchar:", StringComparison.Ordinal));
        return line is not null && long.TryParse(line["rchar:".Length..].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var bytes) ? bytes : 0;
    }

    public bool IsAlive(int pid, ulong? startTime = null)
    {
        var stat = ReadStat(pid);
        return stat is not null && stat.State != 'Z' && stat.State != 'X'
            && (startTime is null || stat.StartTime == startTime);
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
