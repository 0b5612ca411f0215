using System.Text;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Engine;

/// <summary>
/// An engine's log (engine.log in its run directory, which a restored engine goes on writing): its lines, its last
/// lines, and the lines appended to it while the engine runs. Lines are split on whole bytes, so a character written
/// in two pieces is never cut; a line still being written is held back until its newline comes or the engine ends.
/// </summary>
internal sealed class EngineLog : IDisposable
{
    /// <summary>How often a followed log is read again: often enough to feel live, rarely enough to cost nothing.</summary>
    public static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);

    private const int Block = 64 * 1024;

    private readonly FileStream stream;
    private readonly MemoryStream pending = new();

    private EngineLog(FileStream stream) => this.stream = stream;

    /// <summary>Opens the log for reading beside the engine that writes it, and Stop-VllmEngine that removes it.</summary>
    public static EngineLog Open(string path, string engineName)
    {
        try
        {
            return new EngineLog(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CriuCheckpointException(ErrorIds.EngineLogUnreadable, FailureKind.ObjectNotFound,
                $"Engine {engineName} has no log at {path}: its run directory was removed or is being removed.", engineName, e);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new CriuCheckpointException(ErrorIds.EngineLogUnreadable, FailureKind.PermissionDenied,
                $"The log of engine {engineName} ({path}) cannot be read: {e.Message}", engineName, e);
        }
    }

    /// <summary>
    /// The last <paramref name="count"/> lines (every line when null), up to the end of the log now; a last line without
    /// its newline yet is left for <see cref="ReadNew"/> or <see cref="ReadRest"/>.
    /// </summary>
    public IEnumerable<string> ReadLast(int? count)
    {
        stream.Position = count is { } lines ? StartOfLast(lines) : 0;
        return ReadNew();
    }

    /// <summary>
    /// The whole lines appended since the last read, read a block at a time as they are enumerated, so a log of any
    /// size streams through. A log that shrank (rewritten) is read again from its start.
    /// </summary>
    public IEnumerable<string> ReadNew()
    {
        if (stream.Length < stream.Position)
        {
            stream.Position = 0;
            pending.SetLength(0);
        }

        var buffer = new byte[Block];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            pending.Write(buffer, 0, read);
            foreach (var line in TakeLines())
            {
                yield return line;
            }
        }
    }

    /// <summary>What is left once the engine has ended: the new lines and a last line that never got its newline.</summary>
    public IEnumerable<string> ReadRest()
    {
        foreach (var line in ReadNew())
        {
            yield return line;
        }

        if (pending.Length > 0)
        {
            var last = Decode(pending.ToArray());
            pending.SetLength(0);
            yield return last;
        }
    }

    /// <summary>
    /// Writes the lines appended to the log until the engine has ended (checked between reads) or the token is
    /// cancelled; then returns. No deadline: following a log is open-ended, like tail -f.
    /// </summary>
    public async Task FollowAsync(Func<bool> engineAlive, Action<string> write, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Asked before reading, so the lines an engine wrote before it ended are all read.
            var alive = engineAlive();
            foreach (var line in alive ? ReadNew() : ReadRest())
            {
                write(line);
            }

            if (!alive)
            {
                return;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        stream.Dispose();
        pending.Dispose();
    }

    /// <summary>Where the last <paramref name="count"/> lines start: blocks read backwards from the end until enough newlines are seen.</summary>
    private long StartOfLast(int count)
    {
        var end = stream.Length;
        if (count == 0)
        {
            return end;
        }

        var position = end;
        var newlines = 0;
        var buffer = new byte[Block];
        while (position > 0)
        {
            var size = (int)Math.Min(Block, position);
            position -= size;
            stream.Position = position;
            stream.ReadExactly(buffer, 0, size);
            for (var i = size - 1; i >= 0; i--)
            {
                // The newline that ends the log's last line does not start a line.
                if (buffer[i] == (byte)'\n' && position + i != end - 1 && ++newlines == count)
                {
                    return position + i + 1;
                }
            }
        }

        return 0;
    }

    private List<string> TakeLines()
    {
        var bytes = pending.GetBuffer().AsSpan(0, (int)pending.Length);
        var lines = new List<string>();
        int newline;
        var start = 0;
        while ((newline = bytes[start..].IndexOf((byte)'\n')) >= 0)
        {
            lines.Add(Decode(bytes.Slice(start, newline).ToArray()));
            start += newline + 1;
        }

        var rest = bytes[start..].ToArray();
        pending.SetLength(0);
        pending.Write(rest);
        return lines;
    }

    private static string Decode(byte[] line) => Encoding.UTF8.GetString(line).TrimEnd('\r');
}
