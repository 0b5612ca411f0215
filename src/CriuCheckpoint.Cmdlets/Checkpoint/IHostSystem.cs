using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>The facts of this host that save and restore read: privileges, free space, memory, mapped files.</summary>
internal interface IHostSystem
{
    /// <summary>Throws InsufficientPrivilege unless this process may checkpoint and restore.</summary>
    void EnsurePrivileges();

    long AvailableBytes(string directory);

    /// <summary>The memory of the processes that a dump writes out (see <see cref="Preflight.DumpedBytes"/>).</summary>
    long DumpedBytes(IEnumerable<int> processIds);

    List<MappedFile> MappedFiles(IEnumerable<int> processIds);

    HostFacts Facts(string criuVersion, string python);

    /// <summary>The versions of python and the packages that <paramref name="python"/> has installed.</summary>
    Task<IReadOnlyDictionary<string, string>> RuntimeVersionsAsync(string python, IOperationObserver observer, CancellationToken cancellationToken);
}

/// <summary>This host, through /proc and the file system.</summary>
internal sealed class HostSystem : IHostSystem
{
    public void EnsurePrivileges() => Preflight.EnsurePrivileges();

    public long AvailableBytes(string directory) => new DriveInfo(directory).AvailableFreeSpace;

    public long DumpedBytes(IEnumerable<int> processIds) => processIds.Sum(Preflight.DumpedBytes);

    public List<MappedFile> MappedFiles(IEnumerable<int> processIds) => HostInspector.MappedFiles(processIds);

    public HostFacts Facts(string criuVersion, string python) => HostInspector.Collect(criuVersion, python);

    public async Task<IReadOnlyDictionary<string, string>> RuntimeVersionsAsync(string python, IOperationObserver observer, CancellationToken cancellationToken) =>
        (await EngineBackends.DescribeAsync(python, observer, cancellationToken).ConfigureAwait(false)).Versions ?? new Dictionary<string, string>();
}
