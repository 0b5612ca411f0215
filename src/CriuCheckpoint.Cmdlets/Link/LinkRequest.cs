using System.Threading.Channels;

namespace CriuCheckpoint.Link;

/// <summary>A request in flight on an <see cref="EngineLink"/>: the replies arrive on <see cref="Replies"/>.</summary>
internal sealed class LinkRequest
{
    internal LinkRequest(string id, string op, ChannelReader<LinkReply> replies)
    {
        Id = id;
        Op = op;
        Replies = replies;
    }

    public string Id { get; }

    public string Op { get; }

    public ChannelReader<LinkReply> Replies { get; }
}
