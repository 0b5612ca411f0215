using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

/// <summary>Owner and mode of a file through statx(2), whose layout is the same on every architecture.</summary>
internal static partial class FileOwner
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;

    public static (uint Uid, uint Mode) Stat(string path)
    {
        Span<byte> buffer = stackalloc byte[256];
        if (Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            throw new IOException($"statx {path} failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid, u32 gid, u16 mode.
        return (BitConverter.ToUInt32(buffer[20..24]), BitConverter.ToUInt16(buffer[28..30]));
    }

    public static uint EffectiveUserId => GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Statx(int directoryFd, string path, int flags, uint mask, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
