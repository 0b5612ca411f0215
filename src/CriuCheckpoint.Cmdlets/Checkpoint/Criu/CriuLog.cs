namespace CriuCheckpoint.Checkpoint;

/// <summary>Picks what explains a CRIU failure out of its log: each Error line with the lines before it (as runc does).</summary>
internal static class CriuLog
{
    public const int ContextLines = 5;

    public static string Excerpt(IReadOnlyList<string> lines, int maxErrors = 5)
    {
        var picked = new SortedSet<int>();
        var errors = 0;
        for (var i = 0; i < lines.Count && errors < maxErrors; i++)
        {
            if (IsError(lines[i]))
            {
                errors++;
                for (var j = Math.Max(0, i - ContextLines); j <= i; j++)
                {
                    picked.Add(j);
                }
            }
        }

        if (picked.Count == 0)
        {
            // No Error line (killed, or failed before logging one): the end of the log is the best evidence.
            return string.Join(Environment.NewLine, lines.Skip(Math.Max(0, lines.Count - 10)));
        }

        var excerpt = new List<string>();
        var previous = -2;
        foreach (var index in picked)
        {
            if (index != previous + 1 && excerpt.Count > 0)
            {
                excerpt.Add("...");
            }

            excerpt.Add(lines[index]);
            previous = index;
        }

        return string.Join(Environment.NewLine, excerpt);
    }

    public static string ExcerptOfFile(string path)
    {
        try
        {
            return Excerpt(File.ReadAllLines(path));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return $"(no CRIU log at {path})";
        }
    }

    // Without CAP_SYS_RESOURCE every CRIU run logs this rlimit line as an Error, successful runs too: it explains nothing.
    private static bool IsError(string line) =>
        (line.Contains("Error (", StringComparison.Ordinal) || line.StartsWith("Error", StringComparison.Ordinal))
        && !line.Contains("Can't setup RLIMIT_NOFILE", StringComparison.Ordinal);
}
