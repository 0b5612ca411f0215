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

    private static bool IsExecutable(string file) =>
        File.Exists(file)
        && (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
}
