using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

/// <summary>
/// A listening TCP socket on 127.0.0.1 made with plain libc calls, so that it belongs to this process's network
/// namespace and nothing but close() ever touches it here: once handed to an engine, this copy is only closed.
/// (System.Net.Sockets may shut a socket down when disposing it, which would stop the engine's shared copy listening.)
/// </summary>
internal sealed partial class LoopbackListener : IDisposable
{
    private const int AddressFamilyInet = 2;
    private const int SocketStream = 1;
    private const int SocketCloseOnExec = 0x80000;
    private const int Backlog = 128;

    private LoopbackListener(int descriptor, int port)
    {
        Descriptor = descriptor;
        Port = port;
    }

    public int Descriptor { get; private set; }

    public int Port { get; }

    public static string Host => "127.0.0.1";

    /// <summary>Binds an ephemeral port on 127.0.0.1 and listens on it.</summary>
    public static LoopbackListener Open()
    {
        var fd = Socket(AddressFamilyInet, SocketStream | SocketCloseOnExec, 0);
        if (fd < 0)
        {
            throw new IOException($"socket(AF_INET) failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        try
        {
            var address = new InetAddress { Family = AddressFamilyInet, Address = BinaryPrimitives.ReadUInt32LittleEndian([127, 0, 0, 1]) };
            var length = (uint)Marshal.SizeOf<InetAddress>();
            if (Bind(fd, ref address, length) != 0 || Listen(fd, Backlog) != 0 || GetSocketName(fd, ref address, ref length) != 0)
            {
                throw new IOException($"Listening on {Host} failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            return new LoopbackListener(fd, BinaryPrimitives.ReverseEndianness(address.Port));
        }
        catch
        {
            _ = Close(fd);
            throw;
        }
    }

    public void Dispose()
    {
        if (Descriptor >= 0)
        {
            _ = Close(Descriptor);
            Descriptor = -1;
        }
    }

    /// <summary>struct sockaddr_in; the port and address in network byte order.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 16)]
    private struct InetAddress
    {
        public ushort Family;
        public ushort Port;
        public uint Address;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, ref InetAddress address, uint length);

    [LibraryImport("libc", EntryPoint = "listen", SetLastError = true)]
    private static partial int Listen(int fd, int backlog);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    private static partial int GetSocketName(int fd, ref InetAddress address, ref uint length);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
