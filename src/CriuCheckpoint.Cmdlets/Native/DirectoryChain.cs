using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Native;

/// <summary>Owner and mode of an opened file or directory entry, as fstat reports them.</summary>
internal readonly record struct EntryStat(uint Uid, uint Mode)
{
    private const uint TypeMask = 0xf000;

    public bool IsDirectory => (Mode & TypeMask) == 0x4000;

    public bool IsRegularFile => (Mode & TypeMask) == 0x8000;

    public bool IsSymbolicLink => (Mode & TypeMask) == 0xa000;
}

/// <summary>
/// Walks directories by descriptor: each component is opened relative to the one above it with O_NOFOLLOW, so what
/// is inspected is what was opened, and a symlink or a component swapped for one cannot redirect the walk. Fails with
/// a NativeException whose ErrorNumber says why (ELOOP or ENOTDIR for a symlink component).
/// </summary>
internal static partial class DirectoryChain
{
    public const int LoopError = 40; // ELOOP
    public const int NotDirectoryError = 20; // ENOTDIR
    private const int DirectoryFlags = 0x10000 | 0x20000 | 0x80000; // O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;

    /// <summary>
    /// Opens "/" then every component of the absolute path <paramref name="path"/>, handing each (its path so far and
    /// its stat) to <paramref name="inspect"/> before going further; returns the last one, open.
    /// </summary>
    public static SafeFileHandle OpenPath(string path, Action<string, EntryStat> inspect)
    {
        var current = Open(null, "/", "/");
        var walked = "/";
        try
        {
            inspect(walked, Stat(current));
            foreach (var name in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                walked = System.IO.Path.Combine(walked, name);
                var next = Open(current, name, walked);
                current.Dispose();
                current = next;
                inspect(walked, Stat(current));
            }

            return current;
        }
        catch
        {
            current.Dispose();
            throw;
        }
    }

    /// <summary>Opens directory <paramref name="name"/> inside <paramref name="directory"/> without following a symlink.</summary>
    public static SafeFileHandle Open(SafeFileHandle? directory, string name, string pathForMessages)
    {
        var fd = directory is null ? OpenAt(-100, name, DirectoryFlags) : OpenAt((int)directory.DangerousGetHandle(), name, DirectoryFlags);
        if (fd < 0)
        {
            throw Failure("openat", pathForMessages);
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    public static EntryStat Stat(SafeFileHandle handle) => StatAt(handle, string.Empty, AtEmptyPath, "(descriptor)");

    /// <summary>The entry <paramref name="name"/> of <paramref name="directory"/> itself, a symlink not followed.</summary>
    public static EntryStat StatEntry(SafeFileHandle directory, string name, string pathForMessages) =>
        StatAt(directory, name, AtSymlinkNoFollow, pathForMessages);

    /// <summary>The names in an open directory, listed through its descriptor so no path is looked up again.</summary>
    public static IReadOnlyList<string> Names(SafeFileHandle directory) =>
        Directory.EnumerateFileSystemEntries(DescriptorPath(directory)).Select(entry => System.IO.Path.GetFileName(entry)).ToArray();

    /// <summary>/proc/self/fd/N: the kernel resolves it to the very file the descriptor holds, whatever its path is now.</summary>
    public static string DescriptorPath(SafeFileHandle handle) => $"/proc/self/fd/{handle.DangerousGetHandle()}";

    private static EntryStat StatAt(SafeFileHandle directory, string name, int flags, string pathForMessages)
    {
        Span<byte> buffer = stackalloc byte[256];
        if (Statx((int)directory.DangerousGetHandle(), name, flags, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            throw Failure("statx", pathForMessages);
        }

        // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid, u32 gid, u16 mode.
        return new EntryStat(BitConverter.ToUInt32(buffer[20..24]), BitConverter.ToUInt16(buffer[28..30]));
    }

    private static NativeException Failure(string call, string path)
    {
        var errno = Marshal.GetLastPInvokeError();
        var why = errno is LoopError or NotDirectoryError ? "it is a symbolic link or not a directory" : Marshal.GetPInvokeErrorMessage(errno);
        return new NativeException(NativeFailure.Failed, call, $"{path}: {why}") { ErrorNumber = errno };
    }

    [LibraryImport("libc", EntryPoint = "openat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenAt(int directoryFd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Statx(int directoryFd, string path, int flags, uint mask, ref byte buffer);
}
