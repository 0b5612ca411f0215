using MessagePack;

namespace CriuCheckpoint.Link;

/// <summary>One reply frame routed to its request: the parsed header and the raw payload for typed reading.</summary>
internal sealed class LinkReply
{
    public LinkReply(ReplyHeader header, ReadOnlyMemory<byte> payload)
    {
        Header = header;
        Payload = payload;
    }

    public ReplyHeader Header { get; }

    public ReadOnlyMemory<byte> Payload { get; }

    public bool IsFinal => Header.Kind is LinkProtocol.Kinds.Final or LinkProtocol.Kinds.Error;

    public bool IsError => Header.Kind == LinkProtocol.Kinds.Error;

    public T Read<T>() => MessagePackSerializer.Deserialize<T>(Payload, LinkProtocol.SerializerOptions);
}
