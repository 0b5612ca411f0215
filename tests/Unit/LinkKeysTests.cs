using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Link;
using NetMQ;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The link's keys in a run directory as the module reads and writes them (docs/protocol.md, "Security").</summary>
public sealed class LinkKeysTests : IDisposable
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly RunDirectory runDirectory = new(Directory.CreateTempSubdirectory("link-keys-").FullName);

    public void Dispose() => Directory.Delete(runDirectory.Path, recursive: true);

    private void WriteServerPublicKey(string key) => File.WriteAllText(runDirectory.ServerPublicKeyFile, key + "\n");

    [Fact]
    public void ClientKeysTheModuleWritesAreTheOwnersAloneAndReadBack()
    {
        var server = CurveKeyPair.New();
        var client = CurveKeyPair.New();
        WriteServerPublicKey(server.PublicKey);

        runDirectory.WriteClientKeys(client);

        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(runDirectory.ClientSecretKeyFile));
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(runDirectory.ClientPublicKeyFile));
        Assert.Equal(client.PublicKey + "\n", File.ReadAllText(runDirectory.ClientPublicKeyFile));
        Assert.Empty(Directory.GetFiles(runDirectory.Path, "*.tmp"));
        var keys = runDirectory.ReadLinkKeys();
        Assert.Equal(NetMQCertificate.FromPublicKey(server.PublicKey).PublicKey, keys.ServerPublicKey);
        Assert.Equal(client.PublicKey, keys.Client.PublicKeyZ85);
        Assert.Equal(client.SecretKey, keys.Client.SecretKeyZ85);
    }

    [Fact]
    public void WritingNewClientKeysReplacesTheOldOnes()
    {
        runDirectory.WriteClientKeys(CurveKeyPair.New());
        var replacement = CurveKeyPair.New();

        runDirectory.WriteClientKeys(replacement);

        Assert.Equal(replacement.SecretKey + "\n", File.ReadAllText(runDirectory.ClientSecretKeyFile));
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(runDirectory.ClientSecretKeyFile));
    }

    [Fact]
    public void EveryNewKeyPairIsAnotherWithItsPublicKeyDerivedFromItsSecret()
    {
        var pairs = Enumerable.Range(0, 8).Select(_ => CurveKeyPair.New()).ToArray();

        Assert.Equal(pairs.Length, pairs.Select(p => p.SecretKey).Distinct().Count());
        Assert.All(pairs, p => Assert.Equal(p.PublicKey, NetMQCertificate.CreateFromSecretKey(p.SecretKey).PublicKeyZ85));
        Assert.All(pairs, p => Assert.DoesNotContain(p.SecretKey, p.ToString()));
    }

    [Fact]
    public void MissingKeysAreLinkKeysUnavailable()
    {
        var failure = Assert.Throws<CriuCheckpointException>(runDirectory.ReadLinkKeys);

        Assert.Equal(ErrorIds.LinkKeysUnavailable, failure.ErrorId);
        Assert.Equal(FailureKind.ObjectNotFound, failure.Kind);
        Assert.Contains(runDirectory.Path, failure.Message);
    }

    [Theory]
    [InlineData("too short")]
    [InlineData("~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~")]
    [InlineData("########################################")]
    public void DamagedKeysAreLinkKeysUnavailable(string serverPublicKey)
    {
        WriteServerPublicKey(serverPublicKey);
        runDirectory.WriteClientKeys(CurveKeyPair.New());

        var failure = Assert.Throws<CriuCheckpointException>(runDirectory.ReadLinkKeys);

        Assert.Equal(ErrorIds.LinkKeysUnavailable, failure.ErrorId);
        Assert.Equal(FailureKind.InvalidData, failure.Kind);
        Assert.Contains("server public key", failure.Message);
    }
}
