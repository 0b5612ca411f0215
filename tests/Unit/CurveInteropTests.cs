using System.Diagnostics;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Link;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// NetMQ's CURVE client against libzmq's CURVE server: the module's EngineLink reaching the engine's own link code
/// (tests/Unit/curve_link_peer.py runs frontend.py's ROUTER and ZAP handler and curve.py's key files) with the keys a
/// run directory holds, as the engine writes them at start and as the module writes them at resume.
/// </summary>
public sealed class CurveInteropTests : IDisposable
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan UnansweredTimeout = TimeSpan.FromSeconds(1.5);

    private readonly RunDirectory runDirectory = new(Directory.CreateTempSubdirectory("curve-").FullName);
    private readonly Process peer;
    private string endpoint;

    public CurveInteropTests()
    {
        var start = new ProcessStartInfo(TestPython.Path)
        {
            ArgumentList = { Path.Combine(TestPython.RepositoryRoot, "tests/Unit/curve_link_peer.py"), runDirectory.Path },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        };
        foreach (var (name, value) in TestPython.ScriptEnvironment)
        {
            start.Environment[name] = value;
        }

        peer = Process.Start(start)!;
        endpoint = NextEndpoint();
    }

    public void Dispose()
    {
        peer.StandardInput.Close();
        if (!peer.WaitForExit(10_000))
        {
            peer.Kill();
        }

        peer.Dispose();
        Directory.Delete(runDirectory.Path, recursive: true);
    }

    private string NextEndpoint()
    {
        var line = peer.StandardOutput.ReadLineAsync();
        Assert.True(line.Wait(TimeSpan.FromSeconds(30)), "curve_link_peer.py printed no endpoint within 30 s.");
        return line.Result ?? throw new InvalidOperationException($"curve_link_peer.py exited with {peer.ExitCode}.");
    }

    /// <summary>What the engine does on a resume message: bind anew with its server secret key.</summary>
    private void Resume(string serverSecretKey)
    {
        peer.StandardInput.WriteLine(serverSecretKey);
        peer.StandardInput.Flush();
        endpoint = NextEndpoint();
    }

    private async Task<HealthReply> HealthAsync(LinkKeys keys, TimeSpan timeout)
    {
        using var link = new EngineLink(endpoint, keys);
        return await link.CallAsync<HealthReply>(LinkProtocol.Ops.Health, timeout, CancellationToken.None);
    }

    private async Task AssertUnansweredAsync(LinkKeys keys)
    {
        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => HealthAsync(keys, UnansweredTimeout));
        Assert.Equal(ErrorIds.LinkTimeout, failure.ErrorId);
    }

    [Fact]
    public async Task TheKeysTheEngineWritesAtStartLetTheModuleIn()
    {
        var keys = runDirectory.ReadLinkKeys();

        Assert.Equal("ready", (await HealthAsync(keys, ReplyTimeout)).State);
        // NetMQ derives from the client secret key the public key libsodium made with it.
        Assert.Equal(File.ReadAllText(runDirectory.ClientPublicKeyFile).Trim(), keys.Client.PublicKeyZ85);
    }

    [Fact]
    public async Task MessagesOfAnySizeCrossBothWays()
    {
        using var link = new EngineLink(endpoint, runDirectory.ReadLinkKeys());
        foreach (var size in new[] { 1, 255, 256, 65_536, 3_000_000 })
        {
            var prompt = string.Create(size, size, (chars, seed) =>
            {
                for (var i = 0; i < chars.Length; i++)
                {
                    chars[i] = (char)('a' + ((i * 7) + seed) % 26);
                }
            });

            var reply = await link.CallAsync<GenerateArgs, GenerateFinalReply>(LinkProtocol.Ops.Generate, new GenerateArgs { Prompt = prompt },
                ReplyTimeout, CancellationToken.None);

            Assert.Equal(prompt, reply.Text);
        }
    }

    [Fact]
    public async Task AClientKeyTheEngineDidNotIssueIsNeverAnswered()
    {
        var serverPublicKey = File.ReadAllText(runDirectory.ServerPublicKeyFile).Trim();

        await AssertUnansweredAsync(new LinkKeys(serverPublicKey, CurveKeyPair.New().SecretKey));
        Assert.Equal("ready", (await HealthAsync(runDirectory.ReadLinkKeys(), ReplyTimeout)).State);
    }

    [Fact]
    public async Task TheKeysTheModuleIssuesAtResumeLetItInAndTheEnginesOwnNoMore()
    {
        var before = runDirectory.ReadLinkKeys();
        var server = CurveKeyPair.New();
        runDirectory.WriteClientKeys(CurveKeyPair.New());

        Resume(server.SecretKey);

        // libsodium derives from the module's server secret key the public key NetMQ derived.
        Assert.Equal(server.PublicKey, File.ReadAllText(runDirectory.ServerPublicKeyFile).Trim());
        var after = runDirectory.ReadLinkKeys();
        Assert.Equal("ready", (await HealthAsync(after, ReplyTimeout)).State);
        await AssertUnansweredAsync(before);
        await AssertUnansweredAsync(new LinkKeys(server.PublicKey, before.Client.SecretKeyZ85!));
    }
}
