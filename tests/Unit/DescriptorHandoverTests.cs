using System.Net.Sockets;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class DescriptorHandoverTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("handover-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task LoopbackListenerAcceptsConnectionsOnItsPort()
    {
        using var listener = LoopbackListener.Open();
        Assert.InRange(listener.Port, 1, 65535);
        using var client = new TcpClient();
        await client.ConnectAsync(LoopbackListener.Host, listener.Port);
        Assert.True(client.Connected);
    }

    [Fact]
    public async Task SendGivesUpAtItsTimeoutAndRemovesTheSocketFile()
    {
        var path = Path.Combine(directory, "handover.sock");
        using (var handover = DescriptorHandover.Listen(path))
        {
            Assert.True(File.Exists(path));
            Assert.False(await handover.SendAsync(0, TimeSpan.FromMilliseconds(50), () => true, CancellationToken.None));
        }

        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task SendStopsWaitingWhenThePeerCannotComeAnyMore()
    {
        using var handover = DescriptorHandover.Listen(Path.Combine(directory, "handover.sock"));
        var started = DateTime.UtcNow;
        Assert.False(await handover.SendAsync(0, TimeSpan.FromMinutes(1), () => false, CancellationToken.None));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task SendHonoursCancellation()
    {
        using var handover = DescriptorHandover.Listen(Path.Combine(directory, "handover.sock"));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => handover.SendAsync(0, TimeSpan.FromMinutes(1), () => true, cancel.Token));
    }

    [Fact]
    public async Task SendReachesAPeerThatConnects()
    {
        var path = Path.Combine(directory, "handover.sock");
        using var listener = LoopbackListener.Open();
        using var handover = DescriptorHandover.Listen(path);
        var sending = handover.SendAsync(listener.Descriptor, TimeSpan.FromSeconds(10), () => true, CancellationToken.None);
        using var peer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await peer.ConnectAsync(new UnixDomainSocketEndPoint(path));
        Assert.True(await sending);
        var payload = new byte[1];
        Assert.Equal(1, await peer.ReceiveAsync(payload));
    }

    [Fact]
    public void ListenRefusesPathsTooLongForAUnixSocket()
    {
        var path = Path.Combine(directory, new string('d', 100), "handover.sock");
        var error = Assert.Throws<IOException>(() => DescriptorHandover.Listen(path));
        Assert.Contains("CRIUCHECKPOINT_HOME", error.Message);
    }
}
