using System.Runtime.InteropServices;
using System.Text;

namespace CriuCheckpoint.Native;

/// <summary>Named pipes: the engine blocks reading one while it is prepared for (or restored from) a checkpoint.</summary>
internal static partial class Fifo
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
    /// Opens the FIFO for writing once a reader has it open. A non-blocking open fails with ENXIO until then, so this
    /// polls: the wait is bounded, cancellable, and gives up early when <paramref name="stillWorthWaiting"/> says so.
    /// Returns null when the reader never came.
    /// </summary>
    public static async Task<FifoWriter?> OpenWhenReadAsync(string path, TimeSpan timeout, Func<bool> stillWorthWaiting, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var fd = Open(path, OpenWriteOnly | OpenNonBlocking | OpenCloseOnExec);
            if (fd >= 0)
            {
                return new FifoWriter(path, fd);
            }

            var error = Marshal.GetLastPInvokeError();
            if (error != NoReader && error != Interrupted)
            {
                throw new IOException($"Opening {path} for writing failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            if (DateTime.UtcNow >= deadline || !stillWorthWaiting())
            {
                return null;
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The write end of a FIFO whose reader is present; closing it ends the reader's message.</summary>
    public sealed class FifoWriter : IDisposable
    {
        private readonly string path;
        private int fd;

        internal FifoWriter(string path, int fd)
        {
            this.path = path;
            this.fd = fd;
        }

        public void Write(string message)
        {
            var bytes = Encoding.UTF8.GetBytes(message);
            if (Fifo.Write(fd, bytes, bytes.Length) != bytes.Length)
            {
                throw new IOException($"Writing to {path} failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }

        public void Dispose()
        {
            if (fd >= 0)
            {
                Close(fd);
                fd = -1;
            }
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
