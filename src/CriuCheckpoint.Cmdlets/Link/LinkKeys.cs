using System.Security.Cryptography;
using NetMQ;

namespace CriuCheckpoint.Link;

/// <summary>
/// What a client needs to reach one engine over CurveZMQ (docs/protocol.md, "Security"): the engine's server public
/// key, and the secret key of a client keypair the engine lets in (its public key is derived from it). Keys are Z85
/// text on disk and in the resume message, 40 characters for 32 bytes, as libzmq writes them.
/// </summary>
internal sealed class LinkKeys
{
    private const int Z85Length = 40;

    private const string Z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

    public LinkKeys(string serverPublicKey, string clientSecretKey)
    {
        ServerPublicKey = Decode(serverPublicKey, "server public key");
        Client = NetMQCertificate.CreateFromSecretKey(Decode(clientSecretKey, "client secret key"));
    }

    public byte[] ServerPublicKey { get; }

    public NetMQCertificate Client { get; }

    /// <summary>Makes a socket a CURVE client of the engine; before it connects.</summary>
    public void Apply(SocketOptions options)
    {
        options.CurveServerKey = ServerPublicKey;
        options.CurveCertificate = Client;
    }

    /// <summary>The 32 bytes of a Z85 key; <see cref="FormatException"/> naming <paramref name="what"/> otherwise.</summary>
    private static byte[] Decode(string z85, string what)
    {
        if (z85.Length != Z85Length || !z85.All(Z85Alphabet.Contains))
        {
            throw new FormatException($"The {what} is not a CURVE key ({Z85Length} characters of Z85).");
        }

        try
        {
            // NetMQ decodes Z85 only as part of a certificate.
            return NetMQCertificate.FromPublicKey(z85).PublicKey;
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"The {what} is not a CURVE key: {e.Message}", e);
        }
    }
}

/// <summary>A CURVE keypair as Z85 text. Not a record: a record's ToString would print the secret key.</summary>
internal sealed class CurveKeyPair
{
    private CurveKeyPair(NetMQCertificate certificate)
    {
        PublicKey = certificate.PublicKeyZ85;
        SecretKey = certificate.SecretKeyZ85!;
    }

    public string PublicKey { get; }

    public string SecretKey { get; }

    /// <summary>A new keypair: its secret key from the operating system's CSPRNG, its public key derived from that.</summary>
    public static CurveKeyPair New() => new(NetMQCertificate.CreateFromSecretKey(RandomNumberGenerator.GetBytes(32)));
}
