namespace CriuCheckpoint.Core;

/// <summary>A command line written so that a shell takes it back as the same arguments: for -Debug, to run it by hand.</summary>
internal static class CommandLine
{
    private const string Plain = "-_./=:,+@%";

    public static string Format(IEnumerable<string> arguments) => string.Join(' ', arguments.Select(Quote));

    private static string Quote(string argument) =>
        argument.Length > 0 && argument.All(c => char.IsAsciiLetterOrDigit(c) || Plain.Contains(c))
            ? argument
            : $"'{argument.Replace("'", "'\\''", StringComparison.Ordinal)}'";
}
