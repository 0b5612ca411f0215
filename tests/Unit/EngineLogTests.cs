using System.Text;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>An engine's log as Get-EngineLog reads it: all or the last lines, then what is appended while the engine runs.</summary>
public sealed class EngineLogTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("engine-log-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string Log(string text)
    {
        var path = Path.Combine(root, "engine.log");
        File.WriteAllText(path, text);
        return path;
    }

    private static void Append(string path, string text) => File.AppendAllText(path, text);

    [Fact]
    public void Every_line_is_read_without_its_newline()
    {
        using var log = EngineLog.Open(Log("one\r\ntwo\nthree\n"), "e");

        Assert.Equal(["one", "two", "three"], log.ReadLast(null));
    }

    [Theory]
    [InlineData(0, new string[0])]
    [InlineData(1, new[] { "three" })]
    [InlineData(2, new[] { "two", "three" })]
    [InlineData(9, new[] { "one", "two", "three" })]
    public void Tail_reads_the_last_lines(int count, string[] expected)
    {
        using var log = EngineLog.Open(Log("one\ntwo\nthree\n"), "e");

        Assert.Equal(expected, log.ReadLast(count));
    }

    [Fact]
    public void Tail_finds_the_last_lines_of_a_log_larger_than_one_block()
    {
        var lines = Enumerable.Range(0, 20_000).Select(i => $"line {i}").ToArray();
        using var log = EngineLog.Open(Log(string.Join('\n', lines) + "\n"), "e");

        Assert.Equal(lines[^3..], log.ReadLast(3));
    }

    [Fact]
    public void A_line_still_being_written_waits_for_its_newline_or_for_the_end()
    {
        var path = Log("done\nhalf");
        using var log = EngineLog.Open(path, "e");

        Assert.Equal(["done"], log.ReadLast(null));
        Append(path, " a line\nnext");
        Assert.Equal(["half a line"], log.ReadNew());
        Assert.Equal(["next"], log.ReadRest());
    }

    [Fact]
    public void A_character_written_in_two_pieces_is_read_whole()
    {
        var path = Log(string.Empty);
        var euro = Encoding.UTF8.GetBytes("€");
        using var log = EngineLog.Open(path, "e");

        File.AppendAllBytes(path, [(byte)'a', euro[0]]);
        Assert.Empty(log.ReadNew());
        File.AppendAllBytes(path, [euro[1], euro[2], (byte)'\n']);

        Assert.Equal(["a€"], log.ReadNew());
    }

    [Fact]
    public async Task Following_writes_appended_lines_and_ends_with_the_engine()
    {
        var path = Log("old\n");
        using var log = EngineLog.Open(path, "e");
        log.ReadLast(0);
        var alive = true;
        var written = new List<string>();

        var following = log.FollowAsync(() => Volatile.Read(ref alive), line => { lock (written) { written.Add(line); } }, CancellationToken.None);
        Append(path, "new 1\n");
        await WaitUntil(() => written.Count == 1);
        Append(path, "new 2\nlast, without a newline");
        Volatile.Write(ref alive, false);
        await following.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(["new 1", "new 2", "last, without a newline"], written);
    }

    [Fact]
    public async Task Following_stops_promptly_when_cancelled()
    {
        using var log = EngineLog.Open(Log("a\n"), "e");
        using var cancel = new CancellationTokenSource();

        var following = log.FollowAsync(() => true, _ => { }, cancel.Token);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => following.WaitAsync(EngineLog.Poll * 5));
    }

    [Fact]
    public void A_log_that_is_not_there_is_engine_log_unreadable()
    {
        var failure = Assert.Throws<CriuCheckpointException>(() => EngineLog.Open(Path.Combine(root, "gone", "engine.log"), "e"));

        Assert.Equal(ErrorIds.EngineLogUnreadable, failure.ErrorId);
        Assert.Equal(FailureKind.ObjectNotFound, failure.Kind);
    }

    [Fact]
    public void A_log_removed_while_it_is_read_is_read_to_its_end()
    {
        var path = Log("one\n");
        using var log = EngineLog.Open(path, "e");
        Append(path, "two\n");
        File.Delete(path);

        Assert.Equal(["one", "two"], log.ReadLast(null));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.True(condition());
    }
}
