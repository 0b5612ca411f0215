using System.Text;
using System.Text.RegularExpressions;

namespace CriuCheckpoint.Engine;

/// <summary>PowerShell-style wildcards (*, ?, [abc]) for engine names, case-insensitive.</summary>
internal static class NamePattern
{
    public static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        foreach (var c in pattern)
        {
            regex.Append(c switch
            {
                '*' => ".*",
                '?' => ".",
                '[' => "[",
                ']' => "]",
                _ => Regex.Escape(c.ToString()),
            });
        }

        return new Regex(regex.Append('$').ToString(), RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    }

    public static bool HasWildcards(string pattern) => pattern.IndexOfAny(new[] { '*', '?', '[' }) >= 0;
}
