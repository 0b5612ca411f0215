using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The backends as the real engine host describes them (python -m engine_host --describe-backends).</summary>
public sealed class EngineBackendsTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("backends-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static Task<BackendCatalog> Describe() => EngineBackends.DescribeAsync(TestPython.Path, NullObserver.Instance, CancellationToken.None);

    private string Script(string name, string body)
    {
        var path = Path.Combine(root, name);
        File.WriteAllText(path, $"#!/bin/sh\n{body}\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    [Fact]
    public async Task NamesEveryBackendInTheOrderAutoPrefersThem()
    {
        var catalog = await Describe();

        Assert.Equal(["vllm", "torch", "tiny"], catalog.Order);
        Assert.Equal(["auto", "vllm", "torch", "tiny"], catalog.Accepted);
    }

    [Fact]
    public async Task DefaultModelsAreTiny256mLlama1bAndNoneForVllm()
    {
        var catalog = await Describe();

        Assert.Equal("tiny-256m", catalog.Find("tiny")!.DefaultModel);
        Assert.Equal("llama-1b", catalog.Find("torch")!.DefaultModel);
        Assert.Null(catalog.Find("vllm")!.DefaultModel);
    }

    [Fact]
    public async Task TheTinyBackendRunsUnderTheEnginesPythonAndAutoIsOneOfTheBackends()
    {
        var catalog = await Describe();

        Assert.True(catalog.Find("tiny")!.Available);
        Assert.Contains(catalog.Auto, catalog.Order);
        Assert.Equal(catalog.Auto, catalog.Resolve(EngineBackends.Auto));
    }

    [Fact]
    public async Task AnUnavailableBackendSaysWhichPackageIsMissing()
    {
        var catalog = await Describe();

        Assert.All(catalog.Backends.Where(b => !b.Available), b => Assert.StartsWith("this Python cannot import", b.Reason));
    }

    [Fact]
    public async Task AnUnknownBackendIsUnknownBackendNamingTheKnownOnes()
    {
        var catalog = await Describe();

        var failure = Assert.Throws<CriuCheckpointException>(() => catalog.Resolve("llamacpp"));

        Assert.Equal(ErrorIds.UnknownBackend, failure.ErrorId);
        Assert.Equal(FailureKind.InvalidArgument, failure.Kind);
        Assert.Contains("auto, vllm, torch, tiny", failure.Message);
    }

    [Fact]
    public async Task AnInterpreterIsAskedOnce()
    {
        Assert.Same(await Describe(), await Describe());
    }

    [Fact]
    public async Task AnInterpreterThatCannotDescribeItsBackendsIsAStartupFailureWithItsOutput()
    {
        var python = Script("broken-python", "echo 'no engine host here' >&2\nexit 1");

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => EngineBackends.DescribeAsync(python, NullObserver.Instance, CancellationToken.None));

        Assert.Equal(ErrorIds.EngineStartupFailed, failure.ErrorId);
        Assert.Contains("no engine host here", failure.Details);
    }

    [Fact]
    public async Task AnAnswerThatIsNotACompleteDescriptionIsAStartupFailure()
    {
        var python = Script("odd-python", """echo '{"backends": [], "auto": "tiny", "order": ["tiny"]}'""");

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => EngineBackends.DescribeAsync(python, NullObserver.Instance, CancellationToken.None));

        Assert.Equal(ErrorIds.EngineStartupFailed, failure.ErrorId);
    }

    [Fact]
    public async Task CancellingStopsTheInterpreter()
    {
        var python = Script("slow-python", "exec sleep 60");
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => EngineBackends.DescribeAsync(python, NullObserver.Instance, cancel.Token));
    }

    [Fact]
    public async Task TheEngineStartsWithTheDefaultModelOfTheBackendTheHostDescribes()
    {
        var spec = await new EngineLauncher(new EngineRegistry(root), python: new PythonLocator(new AcceptingPythonProbe(), _ => null))
            .ResolveAsync(new EngineSpec { Backend = "tiny", Model = string.Empty, Python = TestPython.Path }, CancellationToken.None);

        Assert.Equal("tiny-256m", spec.Model);
    }

    [Fact]
    public async Task ModelPresetsAreThoseOfTheBackendGivenAndAutoMeansTheBackendItResolvesTo()
    {
        var catalog = await Describe();

        Assert.Equal(["tiny-256m", "tiny-64m", "tiny-16m", "tiny-4m"], catalog.Presets("tiny"));
        Assert.Empty(catalog.Presets("vllm"));
        Assert.Equal(catalog.Presets(catalog.Auto), catalog.Presets(EngineBackends.Auto));
    }

    [Fact]
    public async Task WithoutABackendEveryPresetIsOffered()
    {
        var catalog = await Describe();

        Assert.Equal(catalog.Backends.SelectMany(b => b.Presets).Select(p => p.Name), catalog.Presets(null));
        Assert.Contains("llama-1b", catalog.Presets(null));
    }

    [Fact]
    public async Task EachModelSaysItsBackendWhetherItIsTheDefaultAndWhetherThisPythonCanRunIt()
    {
        var catalog = await Describe();

        var models = catalog.Models(null).ToDictionary(m => m.Name);

        Assert.Equal(catalog.Presets(null), models.Keys);
        Assert.Equal("tiny", models["tiny-256m"].Backend);
        Assert.True(models["tiny-256m"].IsDefault);
        Assert.False(models["tiny-64m"].IsDefault);
        Assert.True(models["tiny-4m"].Available);
        Assert.Equal(catalog.Find("torch")!.Available, models["llama-1b"].Available);
        Assert.Equal(catalog.Find("torch")!.Reason, models["llama-1b"].Reason);
        Assert.InRange(models["llama-1b"].Parameters, 1_050_000_000, 1_150_000_000);
        Assert.Contains("TinyLlama", models["llama-1b"].Description);
    }

    [Fact]
    public async Task ModelsOfOneBackendAreItsPresetsAutoIsTheBackendItResolvesToAndAnUnknownOneIsRefused()
    {
        var catalog = await Describe();

        Assert.Equal(catalog.Presets("tiny"), catalog.Models("tiny").Select(m => m.Name));
        Assert.Equal(catalog.Presets(catalog.Auto), catalog.Models(EngineBackends.Auto).Select(m => m.Name));
        Assert.Equal(ErrorIds.UnknownBackend, Assert.Throws<CriuCheckpointException>(() => catalog.Models("llamacpp").ToList()).ErrorId);
    }
}
