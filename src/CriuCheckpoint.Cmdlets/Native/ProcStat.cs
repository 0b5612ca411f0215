using System.Globalization;

namespace CriuCheckpoint.Native;

/// <summary>The fields of /proc/PID/stat this module needs.</summary>
internal sealed record ProcStat(int ProcessId, string Name, char State, int ParentProcessId, int ProcessGroupId, int SessionId, ulong StartTime)
{
    public static ProcStat Parse(string text)
    {
        // The name is in parentheses and may itself contain spaces and parentheses: split around the last ')'.
        var open = text.IndexOf('(');
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open)
        {
            throw new FormatException($"Not a /proc/PID/stat line: '{text}'.");
        }

        var pid = int.Parse(text.AsSpan(0, open).Trim(), CultureInfo.InvariantCulture);
        var name = text.Substring(open + 1, close - open - 1);
        var rest = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // rest[0] is field 3 (state); field N is rest[N - 3].
        return new ProcStat(
            pid,
            name,
            rest[0][0],
            int.Parse(rest[1], CultureInfo.InvariantCulture),
            int.Parse(rest[2], CultureInfo.InvariantCulture),
            int.Parse(rest[3], CultureInfo.InvariantCulture),
            ulong.Parse(rest[19], CultureInfo.InvariantCulture));
    }
}
