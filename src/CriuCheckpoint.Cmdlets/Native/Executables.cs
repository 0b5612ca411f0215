namespace CriuCheckpoint.Native;

/// <summary>Resolves a program name the way a shell does: a path is taken as is, a bare name is searched on PATH.</summary>
internal static class Executables
{
    public static string? Find(string name)
    {
        if (name.Contains('/'))
        {
            var full = Path.GetFullPath(name);
            return IsExecutable(full) ? full : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(IsExecutable);
    }

    /// <summary>Every executable <paramref name="name"/> in the folders of <paramref name="path"/> (a PATH value), in order.</summary>
    public static IEnumerable<string> FindAll(string name, string path) =>
        path.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(Path.GetFullPath(dir), name))
            .Where(IsExecutable);

    private static bool IsExecutable(string file) =>
        File.Exists(file)
        && (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
}
