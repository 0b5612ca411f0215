using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace CriuCheckpoint.Native;

/// <summary>
/// Hands one open file descriptor to the first process that connects to a unix socket at a path (SCM_RIGHTS).
/// A pathname socket is found through the file system, so this reaches a process in another network namespace
/// as long as it sees the same directory: the way a restored replica gets a listener made in the host's namespace.
/// </summary>
internal sealed partial class DescriptorHandover : IDisposable
{
    private const int MaxSocketPathBytes = 107; // sizeof(sun_path) less the terminating NUL
    private const int SocketLevel = 1; // SOL_SOCKET
    private const int Rights = 1; // SCM_RIGHTS
    private const int NoSignal = 0x4000; // MSG_NOSIGNAL: a peer gone mid-send is an error, not SIGPIPE
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);
    private readonly Socket server;

    private DescriptorHandover(string socketPath, Socket server)
    {
        SocketPath = socketPath;
        this.server = server;
    }

    public string SocketPath { get; }

    /// <summary>Listens at <paramref name="socketPath"/> (a stale socket file there is replaced).</summary>
    public static DescriptorHandover Listen(string socketPath)
    {
        if (Encoding.UTF8.GetByteCount(socketPath) > MaxSocketPathBytes)
        {
            throw new IOException($"The unix socket path {socketPath} is longer than {MaxSocketPathBytes} bytes; use a shorter CRIUCHECKPOINT_HOME.");
        }

        File.Delete(socketPath);
        var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            server.Bind(new UnixDomainSocketEndPoint(socketPath));
            server.Listen(1);
            return new DescriptorHandover(socketPath, server);
        }
        catch (SocketException e)
        {
            server.Dispose();
            throw new IOException($"Listening on {socketPath} failed: {e.Message}", e);
        }
    }

    /// <summary>
    /// Sends <paramref name="descriptor"/> to the first peer that connects. Returns false when none came within
    /// <paramref name="timeout"/> or <paramref name="stillWorthWaiting"/> said to give up.
    /// </summary>
    public async Task<bool> SendAsync(int descriptor, TimeSpan timeout, Func<bool> stillWorthWaiting, CancellationToken cancellationToken)
    {
        using var stopAccepting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var accept = server.AcceptAsync(stopAccepting.Token).AsTask();
        var deadline = DateTime.UtcNow + timeout;
        while (!accept.IsCompleted)
        {
            if (cancellationToken.IsCancellationRequested || DateTime.UtcNow >= deadline || !stillWorthWaiting())
            {
                await stopAccepting.CancelAsync().ConfigureAwait(false);
                await accept.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                return false;
            }

            await Task.WhenAny(accept, Task.Delay(Poll, CancellationToken.None)).ConfigureAwait(false);
        }

        try
        {
            using var peer = await accept.ConfigureAwait(false);
            Send(peer.SafeHandle, descriptor);
            return true;
        }
        catch (SocketException e)
        {
            throw new IOException($"Handing a descriptor over {SocketPath} failed: {e.Message}", e);
        }
    }

    public void Dispose()
    {
        server.Dispose();
        File.Delete(SocketPath);
    }

    private static unsafe void Send(SafeHandle peer, int descriptor)
    {
        byte payload = 1; // a stream socket carries ancillary data only along with at least one byte
        var vector = new IoVector { Base = &payload, Length = 1 };
        var control = stackalloc byte[ControlSpace];
        new Span<byte>(control, ControlSpace).Clear();
        var header = (ControlHeader*)control;
        header->Length = (nuint)(sizeof(ControlHeader) + sizeof(int));
        header->Level = SocketLevel;
        header->Type = Rights;
        *(int*)(control + sizeof(ControlHeader)) = descriptor;
        var message = new MessageHeader { Vector = &vector, VectorLength = 1, Control = control, ControlLength = (nuint)ControlSpace };

        var added = false;
        peer.DangerousAddRef(ref added);
        try
        {
            if (SendMessage((int)peer.DangerousGetHandle(), &message, NoSignal) != 1)
            {
                throw new IOException($"sendmsg(SCM_RIGHTS) failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
        finally
        {
            if (added)
            {
                peer.DangerousRelease();
            }
        }
    }

    // CMSG_SPACE(sizeof(int)): the header, then the descriptor, padded to the alignment of size_t.
    private static unsafe int ControlSpace => sizeof(ControlHeader) + sizeof(nuint);

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVector
    {
        public byte* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr (glibc, LP64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVector* Vector;
        public nuint VectorLength;
        public byte* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct cmsghdr (glibc, LP64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ControlHeader
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static unsafe partial nint SendMessage(int fd, MessageHeader* message, int flags);
}
