using CriuCheckpoint.Link;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class ProcFsTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("procfs-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private void AddProcess(int pid, int ppid, string name, char state = 'S', int session = 100, ulong start = 5000, string nspid = "")
    {
        var dir = Directory.CreateDirectory(Path.Combine(root, pid.ToString())).FullName;
        File.WriteAllText(Path.Combine(dir, "stat"), $"{pid} ({name}) {state} {ppid} {pid} {session} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 0");
        File.WriteAllText(Path.Combine(dir, "status"), $"Name:\t{name}\nNSpid:\t{pid}{nspid}\n");
        File.WriteAllText(Path.Combine(dir, "cmdline"), $"python3\0-m\0{name}\0");
    }

    [Fact]
    public void StatParsingSurvivesParenthesesAndSpacesInTheName()
    {
        var stat = ProcStat.Parse("4242 (a (weird) name) R 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 0");

        Assert.Equal(4242, stat.ProcessId);
        Assert.Equal("a (weird) name", stat.Name);
        Assert.Equal('R', stat.State);
        Assert.Equal(17, stat.ParentProcessId);
        Assert.Equal(4242, stat.SessionId);
        Assert.Equal(98765UL, stat.StartTime);
    }

    [Fact]
    public void TreeDiscoveryFindsDescendantsBreadthFirstWithNamespacePids()
    {
        AddProcess(100, 1, "engine_host");
        AddProcess(101, 100, "core-0", nspid: " 7");
        AddProcess(102, 100, "core-1");
        AddProcess(103, 101, "helper");
        AddProcess(200, 1, "unrelated");
        AddProcess(104, 100, "zombie", state: 'Z');

        var tree = ProcessTree.Discover(100, new ProcFs(root));

        Assert.Equal(new[] { 100, 101, 102, 103 }, tree.ProcessIds);
        Assert.Equal(7, tree.Processes[1].NamespaceProcessId);
        Assert.Equal(100, tree.Processes[1].ParentProcessId);
        Assert.Equal("python3 -m core-0", tree.Processes[1].CommandLine);
    }

    [Fact]
    public void TreeOfAMissingProcessIsEmpty()
    {
        Assert.Empty(ProcessTree.Discover(999, new ProcFs(root)).Processes);
    }

    [Fact]
    public void LivenessChecksStartTimeSoReusedPidsAreNotTheEngine()
    {
        AddProcess(300, 1, "engine_host", start: 777);
        AddProcess(301, 1, "dead", state: 'Z');
        var procFs = new ProcFs(root);

        Assert.True(procFs.IsAlive(300, 777));
        Assert.False(procFs.IsAlive(300, 778));
        Assert.False(procFs.IsAlive(301));
        Assert.False(procFs.IsAlive(302));
    }

    [Fact]
    public void SessionMembersIncludeReparentedProcessesOfTheSession()
    {
        AddProcess(400, 1, "engine_host", session: 400, start: 10);
        AddProcess(401, 400, "core-0", session: 400, start: 11);
        AddProcess(402, 1, "orphaned-core", session: 400, start: 12);
        AddProcess(403, 1, "older-process-reusing-the-sid", session: 400, start: 5);
        AddProcess(404, 1, "other-session", session: 999, start: 12);

        var members = new ProcessTerminator(new ProcFs(root)).SessionMembers(400, 10);

        Assert.Equal(new[] { 400, 401, 402 }, members.Select(m => m.ProcessId).Order());
    }

    [Fact]
    public void TheHostProcFsSeesThisProcessAlive()
    {
        var self = Environment.ProcessId;
        var stat = ProcFs.Host.ReadStat(self);

        Assert.NotNull(stat);
        Assert.True(ProcFs.Host.IsAlive(self, stat!.StartTime));
        Assert.Equal(self, ProcessTree.Discover(self).Root!.ProcessId);
    }
}
