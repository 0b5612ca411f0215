// Compiled by bench.ps1 (Add-Type) against the module's NetMQ: health round trips between a NetMQ DEALER and
// bench/link_peer.py, plain or CurveZMQ, timed here so PowerShell's own cost stays out of the figures. The DEALER is
// driven as EngineLink drives its own: a poller thread owns it, the caller hands each request over through a queue
// and waits for the reply, so a round trip has the hops a link round trip has.
using System;
using System.Diagnostics;
using System.Threading;
using NetMQ;
using NetMQ.Sockets;

public sealed class LinkRoundTrip : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly DealerSocket dealer = new DealerSocket();
    private readonly NetMQQueue<byte[]> outgoing = new NetMQQueue<byte[]>();
    private readonly NetMQPoller poller;
    private readonly SemaphoreSlim replied = new SemaphoreSlim(0);
    private readonly byte[] request;

    /// <summary>
    /// With keys (PowerShell passes $null as ""), a CURVE client of that server key and client secret key (Z85);
    /// <paramref name="request"/> is what it sends each time.
    /// </summary>
    public LinkRoundTrip(string endpoint, string serverPublicKey, string clientSecretKey, byte[] request)
    {
        this.request = request;
        dealer.Options.Linger = TimeSpan.Zero;
        if (!string.IsNullOrEmpty(serverPublicKey))
        {
            dealer.Options.CurveServerKey = NetMQCertificate.FromPublicKey(serverPublicKey).PublicKey;
            dealer.Options.CurveCertificate = NetMQCertificate.CreateFromSecretKey(clientSecretKey);
        }

        dealer.ReceiveReady += (_, e) =>
        {
            NetMQMessage message = null;
            while (e.Socket.TryReceiveMultipartMessage(ref message))
            {
                replied.Release();
            }
        };
        outgoing.ReceiveReady += (_, e) =>
        {
            while (e.Queue.TryDequeue(out var payload, TimeSpan.Zero))
            {
                dealer.SendMoreFrameEmpty().SendFrame(payload);
            }
        };
        dealer.Connect(endpoint);
        poller = new NetMQPoller { dealer, outgoing };
        poller.RunAsync("LinkRoundTrip", isBackgroundThread: true);
        // The first round trips pay for the TCP connect, the handshake and the JIT compiling each path (plain and
        // CURVE code differ): they are not round trips of a live link.
        Measure(1000);
    }

    /// <summary>Milliseconds of each of count round trips, one after another.</summary>
    public double[] Measure(int count)
    {
        var samples = new double[count];
        for (var i = 0; i < count; i++)
        {
            var watch = Stopwatch.StartNew();
            outgoing.Enqueue(request);
            if (!replied.Wait(Timeout))
            {
                throw new TimeoutException("link_peer.py did not answer within 10 s.");
            }

            samples[i] = watch.Elapsed.TotalMilliseconds;
        }

        return samples;
    }

    public void Dispose()
    {
        poller.Stop();
        poller.Dispose();
        dealer.Dispose();
        outgoing.Dispose();
        replied.Dispose();
    }
}
