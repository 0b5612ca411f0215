using System.Text;
using System.Text.RegularExpressions;

namespace CriuCheckpoint.Engine;

/// <summary>
/// PowerShell-style wildcards (*, ?, [abc]) for engine names and ids, case-insensitive. A backtick makes the next
/// character literal, as in PowerShell, so a name that holds a wildcard character can still be named exactly.
/// </summary>
internal static class NamePattern
{
    private const char Escape = '`';
    private static readonly char[] Wildcards = { '*', '?', '[', ']' };

    public static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == Escape && i + 1 < pattern.Length)
            {
                regex.Append(Regex.Escape(pattern[++i].ToString()));
                continue;
            }

            regex.Append(pattern[i] switch
            {
                '*' => ".*",
                '?' => ".",
                '[' => "[",
                ']' => "]",
                var c => Regex.Escape(c.ToString()),
            });
        }

        return new Regex(regex.Append('$').ToString(), RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    }

    /// <summary>Whether the pattern holds a wildcard that is not escaped: then matching nothing is no error.</summary>
    public static bool HasWildcards(string pattern)
    {
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == Escape)
            {
                i++;
            }
            else if (pattern[i] is '*' or '?' or '[')
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The pattern that matches exactly this text: its wildcard characters and backticks escaped.</summary>
    public static string EscapeText(string text)
    {
        var escaped = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (c == Escape || Array.IndexOf(Wildcards, c) >= 0)
            {
                escaped.Append(Escape);
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }
}
