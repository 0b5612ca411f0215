using System.Globalization;
using System.Text;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Commands;

/// <summary>
/// The cell texts of the module's table and list views (module/CriuCheckpoint.format.ps1xml calls these): one line
/// each, never wider than its column, sizes in binary units. Public because format views call it from PowerShell.
/// </summary>
public static class ViewFormat
{
    private const char Ellipsis = '…';

    private static readonly string[] Units = { "KiB", "MiB", "GiB", "TiB", "PiB" };

    /// <summary>The text on one line (every control character a space), cut to <paramref name="width"/> with a trailing ellipsis.</summary>
    public static string Cell(string? text, int width)
    {
        var line = OneLine(text);
        return line.Length <= width ? line : Cut(line, width - 1) + Ellipsis;
    }

    /// <summary>
    /// A path that fits <paramref name="width"/>: whole as long as it fits, otherwise an ellipsis and as many of its last
    /// folders as fit (the end names the checkpoint or engine), or the end of its last name.
    /// </summary>
    public static string PathCell(string? path, int width)
    {
        var line = OneLine(path);
        if (line.Length <= width)
        {
            return line;
        }

        var room = width - 1;
        for (var slash = line.IndexOf('/', 1); slash > 0; slash = line.IndexOf('/', slash + 1))
        {
            if (line.Length - slash <= room)
            {
                return Ellipsis + line[slash..];
            }
        }

        return Ellipsis + line[^room..];
    }

    /// <summary>"0 B", "512 B", "1.5 KiB", "51.0 MiB", "15.2 GiB": the largest binary unit that leaves at least 1, one decimal.</summary>
    public static string Bytes(long bytes)
    {
        if (bytes < 1024)
        {
            return bytes.ToString(CultureInfo.CurrentCulture) + " B";
        }

        var value = (double)bytes;
        var unit = -1;
        while (value >= 1024 && unit < Units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return value.ToString("0.0", CultureInfo.CurrentCulture) + " " + Units[unit];
    }

    /// <summary>
    /// One line per phase, "launch  0.013 s", for list views, then one per piece of work done beside the phases,
    /// "weight-prefetch  0.950 s beside them, 1.61 GB at 1.69 GB/s"; empty when nothing was timed.
    /// </summary>
    public static string PhaseLines(PhaseTimings? timings)
    {
        if (timings is null || timings.Count == 0)
        {
            return string.Empty;
        }

        var width = timings.Keys.Concat(timings.Background.Select(b => b.Name)).Max(k => k.Length);
        return string.Join(Environment.NewLine,
            timings.Select(p => p.Key.PadRight(width) + " " + Seconds(p.Value) + " s").Concat(timings.Background.Select(b =>
                b.Name.PadRight(width) + " " + Seconds(b.Seconds) + " s beside them, " + Gigabytes(b.Bytes) + " GB at " + Gigabytes(b.BytesPerSecond) + " GB/s")));
    }

    private static string Seconds(double seconds) => seconds.ToString("0.000", CultureInfo.CurrentCulture);

    private static string Gigabytes(double bytes) => (bytes / 1e9).ToString("0.00", CultureInfo.CurrentCulture);

    private static string OneLine(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return string.Empty;
        }

        var line = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            line.Append(char.IsControl(c) ? ' ' : c);
        }

        return line.ToString();
    }

    /// <summary>The first <paramref name="length"/> characters, one less where that would split a surrogate pair.</summary>
    private static string Cut(string text, int length) =>
        length > 0 && char.IsHighSurrogate(text[length - 1]) ? text[..(length - 1)] : text[..length];
}
