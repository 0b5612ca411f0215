using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Native;

/// <summary>
/// Opens files for reading only, by descriptor, where a path comes from untrusted input (a manifest): an entry of an
/// open directory without following a symlink and without blocking on a FIFO, and a second open file description of a
/// file already opened and checked; and says how much of an open file the page cache holds. Failures are
/// NativeExceptions whose ErrorNumber says why (ELOOP for a symlink).
/// </summary>
internal static partial class ReadOnlyFile
{
    private const int CurrentDirectory = -100; // AT_FDCWD
    private const int DirectoryFlags = 0x10000 | 0x80000; // O_RDONLY | O_DIRECTORY | O_CLOEXEC
    private const int EntryFlags = 0x20000 | 0x800 | 0x100 | 0x80000; // O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
    private const int ReopenFlags = 0x80000; // O_RDONLY | O_CLOEXEC

    /// <summary>The directory at <paramref name="path"/>, symlinks in its path followed as any program that opens it would.</summary>
    public static SafeFileHandle OpenDirectory(string path) => Open(CurrentDirectory, path, DirectoryFlags, path);

    /// <summary>
    /// The entry <paramref name="name"/> of <paramref name="directory"/>: a symlink is refused (ELOOP), and a FIFO or
    /// a device opens without waiting for a peer, so the caller can refuse it by what fstat says of the descriptor.
    /// </summary>
    public static SafeFileHandle OpenEntry(SafeFileHandle directory, string name, string pathForMessages) =>
        Open((int)directory.DangerousGetHandle(), name, EntryFlags, pathForMessages);

    /// <summary>
    /// A new open file description of the very file <paramref name="file"/> holds (through /proc/self/fd), with a file
    /// position and a readahead state of its own: readers that share one description disturb each other's readahead.
    /// </summary>
    public static SafeFileHandle Reopen(SafeFileHandle file, string pathForMessages) =>
        Open(CurrentDirectory, DirectoryChain.DescriptorPath(file), ReopenFlags, pathForMessages);

    /// <summary>
    /// How many bytes of <paramref name="length"/> from <paramref name="offset"/> of the file are in the page cache
    /// now, by cachestat(2), which counts them without reading any; null where the kernel lacks it (before 6.5).
    /// </summary>
    public static long? CachedBytes(SafeFileHandle file, long offset, long length)
    {
        var range = new CachestatRange { Offset = (ulong)offset, Length = (ulong)length };
        var stat = default(Cachestat);
        return Syscall(CachestatSyscall, (int)file.DangerousGetHandle(), ref range, ref stat, 0) == 0
            ? (long)stat.Cached * Environment.SystemPageSize
            : null;
    }

    private static SafeFileHandle Open(int directoryFd, string path, int flags, string pathForMessages)
    {
        var fd = OpenAt(directoryFd, path, flags);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var why = errno == DirectoryChain.LoopError ? "it is a symbolic link" : Marshal.GetPInvokeErrorMessage(errno);
            throw new NativeException(NativeFailure.Failed, "openat", $"{pathForMessages}: {why}") { ErrorNumber = errno };
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    [LibraryImport("libc", EntryPoint = "openat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenAt(int directoryFd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int fd, ref CachestatRange range, ref Cachestat stat, uint flags);

    /// <summary>cachestat's number on every architecture: syscalls added since Linux 5.1 share one table.</summary>
    private const long CachestatSyscall = 451;

    /// <summary>struct cachestat_range.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct CachestatRange
    {
        public ulong Offset;
        public ulong Length;
    }

    /// <summary>struct cachestat: pages cached, dirty, under writeback, evicted, recently evicted.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Cachestat
    {
        public ulong Cached;
        public ulong Dirty;
        public ulong Writeback;
        public ulong Evicted;
        public ulong RecentlyEvicted;
    }
}
