using System.Collections.Concurrent;
using System.Threading.Channels;
using CriuCheckpoint.Core;
using MessagePack;
using NetMQ.Sockets;
using NetMQ;

namespace CriuCheckpoint.Link;

/// <summary>
/// A client connection to one engine: a NetMQ DEALER owned by a dedicated poller thread (NetMQ sockets are not
/// thread-safe), a CurveZMQ client of the engine's keys, many requests in flight, replies routed to each request's
/// channel by id.
/// Every wait has a timeout, honours cancellation and notices when the engine process has died.
/// </summary>
internal sealed class EngineLink : IDisposable
{
    private static readonly TimeSpan LivenessInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(1);
    private static readonly IReadOnlyDictionary<string, object?> EmptyArgs = new Dictionary<string, object?>();

    private readonly DealerSocket socket;
    private readonly NetMQQueue<byte[]> outgoing = new();
    private readonly NetMQPoller poller;
    private readonly ConcurrentDictionary<string, Channel<LinkReply>> pending = new();
    private readonly Func<bool> engineAlive;
    private readonly string idPrefix = Guid.NewGuid().ToString("N")[..8];
    private long nextId;
    private bool disposed;

    public EngineLink(string endpoint, LinkKeys keys, Func<bool>? engineAlive = null)
    {
        Endpoint = endpoint;
        this.engineAlive = engineAlive ?? (() => true);
        socket = new DealerSocket();
        socket.Options.Linger = TimeSpan.FromMilliseconds(200);
        keys.Apply(socket.Options);
        socket.ReceiveReady += OnReceiveReady;
        outgoing.ReceiveReady += OnOutgoingReady;
        socket.Connect(endpoint);
        poller = new NetMQPoller { socket, outgoing };
        poller.RunAsync("CriuCheckpoint.EngineLink", isBackgroundThread: true);
    }

    public string Endpoint { get; }

    /// <summary>Sends a request; its replies arrive on the returned request's channel.</summary>
    public LinkRequest Send<TArgs>(string op, TArgs args)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var id = $"{idPrefix}-{Interlocked.Increment(ref nextId)}";
        var channel = Channel.CreateUnbounded<LinkReply>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        pending[id] = channel;
        var envelope = new RequestEnvelope<TArgs> { Id = id, Op = op, Args = args };
        outgoing.Enqueue(MessagePackSerializer.Serialize(envelope, LinkProtocol.SerializerOptions));
        return new LinkRequest(id, op, channel.Reader);
    }

    public LinkRequest Send(string op) => Send(op, EmptyArgs);

    /// <summary>Waits for the next reply of a request; error replies become exceptions.</summary>
    public async Task<LinkReply> NextReplyAsync(LinkRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                if (request.Replies.TryRead(out var reply))
                {
                    return reply.IsError ? throw ToException(request, reply.Header) : reply;
                }

                var ready = request.Replies.WaitToReadAsync(deadline.Token).AsTask();
                var tick = Task.Delay(LivenessInterval, deadline.Token);
                if (await Task.WhenAny(ready, tick).ConfigureAwait(false) == ready)
                {
                    if (!await ready.ConfigureAwait(false))
                    {
                        throw new CriuCheckpointException(ErrorIds.EngineDied, FailureKind.ConnectionError,
                            $"The link to {Endpoint} closed before '{request.Op}' was answered.", Endpoint);
                    }

                    continue;
                }

                if (!engineAlive())
                {
                    throw new CriuCheckpointException(ErrorIds.EngineDied, FailureKind.ResourceUnavailable,
                        $"The engine at {Endpoint} died while '{request.Op}' ({request.Id}) was in flight.", Endpoint);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CriuCheckpointException(ErrorIds.LinkTimeout, FailureKind.OperationTimeout,
                $"The engine at {Endpoint} did not answer '{request.Op}' within {timeout.TotalSeconds:0.#} s.", Endpoint);
        }
    }

    /// <summary>Sends a request and waits for its final reply, read as <typeparamref name="TReply"/>.</summary>
    public async Task<TReply> CallAsync<TArgs, TReply>(string op, TArgs args, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var request = Send(op, args);
        try
        {
            while (true)
            {
                var reply = await NextReplyAsync(request, timeout, cancellationToken).ConfigureAwait(false);
                if (reply.IsFinal)
                {
                    return reply.Read<TReply>();
                }
            }
        }
        finally
        {
            Forget(request);
        }
    }

    public Task<TReply> CallAsync<TReply>(string op, TimeSpan timeout, CancellationToken cancellationToken) =>
        CallAsync<IReadOnlyDictionary<string, object?>, TReply>(op, EmptyArgs, timeout, cancellationToken);

    /// <summary>Stops routing replies of a request the caller no longer reads.</summary>
    public void Forget(LinkRequest request) => pending.TryRemove(request.Id, out _);

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        poller.Stop();
        poller.Dispose();
        socket.Dispose();
        outgoing.Dispose();
        foreach (var channel in pending.Values)
        {
            channel.Writer.TryComplete();
        }

        pending.Clear();
    }

    internal static CriuCheckpointException ToException(LinkRequest request, ReplyHeader header)
    {
        var code = header.Code ?? LinkProtocol.Codes.EngineError;
        var message = $"The engine refused '{request.Op}': {header.Message} ({code}).";
        return code switch
        {
            LinkProtocol.Codes.NotReady => new CriuCheckpointException(ErrorIds.EngineNotReady, FailureKind.ResourceUnavailable, message, request.Id),
            LinkProtocol.Codes.BadRequest or LinkProtocol.Codes.PromptTooLong =>
                new CriuCheckpointException(ErrorIds.EngineRequestRejected, FailureKind.InvalidArgument, message, request.Id),
            LinkProtocol.Codes.UnknownOp or LinkProtocol.Codes.UnsupportedVersion =>
                new CriuCheckpointException(ErrorIds.ProtocolMismatch, FailureKind.ProtocolError, message, request.Id),
            LinkProtocol.Codes.CheckpointUnsupported =>
                new CriuCheckpointException(ErrorIds.CheckpointUnsupported, FailureKind.NotImplemented, message, request.Id),
            _ => new CriuCheckpointException(ErrorIds.EngineRequestFailed, FailureKind.InvalidOperation, message, request.Id),
        };
    }

    /// <summary>
    /// A DEALER with no connection blocks a send until one exists, and a peer that refused the CURVE handshake may
    /// never give one: the poller thread waits a bounded time, then drops what is queued, and each dropped request
    /// ends with its caller's own timeout (LinkTimeout) rather than a thread stuck for good.
    /// </summary>
    private void OnOutgoingReady(object? sender, NetMQQueueEventArgs<byte[]> e)
    {
        while (e.Queue.TryDequeue(out var payload, TimeSpan.Zero))
        {
            var message = new NetMQMessage(2);
            message.AppendEmptyFrame();
            message.Append(payload);
            if (!socket.TrySendMultipartMessage(SendTimeout, message))
            {
                while (e.Queue.TryDequeue(out _, TimeSpan.Zero))
                {
                }

                return;
            }
        }
    }

    private void OnReceiveReady(object? sender, NetMQSocketEventArgs e)
    {
        NetMQMessage? message = null;
        while (e.Socket.TryReceiveMultipartMessage(ref message))
        {
            Route(message.Last.ToByteArray());
        }
    }

    private void Route(byte[] payload)
    {
        ReplyHeader header;
        try
        {
            header = MessagePackSerializer.Deserialize<ReplyHeader>(payload, LinkProtocol.SerializerOptions);
        }
        catch (MessagePackSerializationException)
        {
            return; // Not a reply of this protocol: nothing can be routed, and the sender learns nothing from us.
        }

        if (!pending.TryGetValue(header.Id, out var channel))
        {
            return; // A request its caller forgot (timed out or cancelled): late replies are dropped.
        }

        var reply = new LinkReply(header, payload);
        channel.Writer.TryWrite(reply);
        if (reply.IsFinal)
        {
            channel.Writer.TryComplete();
            pending.TryRemove(header.Id, out _);
        }
    }
}
