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
            }
            else if (pattern[i] == '[' && ClosingBracket(pattern, i) is var end and > 0)
            {
                regex.Append(CharacterClass(pattern[(i + 1)..end]));
                i = end;
            }
            else
            {
                regex.Append(pattern[i] switch
                {
                    '*' => ".*",
                    '?' => ".",
                    var c => Regex.Escape(c.ToString()),
                });
            }
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
            else if (pattern[i] is '*' or '?' || (pattern[i] == '[' && ClosingBracket(pattern, i) > 0))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Where the bracket opened at <paramref name="open"/> closes; -1 when it never does (then it is a plain character).</summary>
    private static int ClosingBracket(string pattern, int open)
    {
        for (var i = open + 1; i < pattern.Length; i++)
        {
            if (pattern[i] == Escape)
            {
                i++;
            }
            else if (pattern[i] == ']')
            {
                return i > open + 1 ? i : -1;
            }
        }

        return -1;
    }

    /// <summary>[abc] and [a-c] as a regex class: a dash between two members makes a range, anything else is literal.</summary>
    private static string CharacterClass(string members)
    {
        var regex = new StringBuilder("[");
        for (var i = 0; i < members.Length; i++)
        {
            if (members[i] == Escape && i + 1 < members.Length)
            {
                regex.Append(Literal(members[++i]));
            }
            else if (members[i] == '-' && i > 0 && i < members.Length - 1)
            {
                regex.Append('-');
            }
            else
            {
                regex.Append(Literal(members[i]));
            }
        }

        return regex.Append(']').ToString();
    }

    private static string Literal(char c) => $"\\u{(int)c:x4}";

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
