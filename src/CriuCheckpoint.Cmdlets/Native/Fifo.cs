using System.Runtime.InteropServices;
using System.Text;

namespace CriuCheckpoint.Native;

/// <summary>Named pipes: the engine blocks reading one while it is prepared for (or restored from) a checkpoint.</summary>
public static partial class Fifo
{
    private const int OpenWriteOnly = 0x1;
    private const int OpenNonBlocking = 0x800;
    private const int OpenCloseOnExec = 0x80000;
    private const int NoReader = 6; // ENXIO: no process has the FIFO open for reading yet.
    private const int Interrupted = 4; // EINTR
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(2);

    public static void Create(string path)
    {
        if (MakeFifo(path, Convert.ToUInt32("600", 8)) != 0)
        {
            throw new IOException($"mkfifo {path} failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>
    /// Writes a message once a reader has the FIFO open. A non-blocking open fails with ENXIO until then, so this
    /// polls: the wait is bounded, cancellable, and gives up early when <paramref name="stillWorthWaiting"/> says so.
    /// Returns false when the reader never came.
    /// </summary>
    public static async Task<bool> WriteWhenReadAsync(string path, string message, TimeSpan timeout, Func<bool> stillWorthWaiting, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var fd = Open(path, OpenWriteOnly | OpenNonBlocking | OpenCloseOnExec);
            if (fd >= 0)
            {
                try
                {
                    var bytes = Encoding.UTF8.GetBytes(message);
                    if (Write(fd, bytes, (nint)bytes.Length) != bytes.Length)
                    {
                        throw new IOException($"Writing to {path} failed: {Marshal.GetLastPInvokeErrorMessage()}");
                    }

                    return true;
                }
                finally
                {
                    Close(fd);
                }
            }

            var error = Marshal.GetLastPInvokeError();
            if (error != NoReader && error != Interrupted)
            {
                throw new IOException($"Opening {path} for writing failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            if (DateTime.UtcNow >= deadline || !stillWorthWaiting())
            {
                return false;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MakeFifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, byte[] buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
