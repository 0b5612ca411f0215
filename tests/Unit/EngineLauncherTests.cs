using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>Startup failures that need no engine host: each is a clear error and leaves no run directory behind.</summary>
public sealed class EngineLauncherTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("launcher-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private async Task<CriuCheckpointException> StartFails(EngineSpec spec)
    {
        var registry = new EngineRegistry(root);
        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() =>
            new EngineLauncher(registry).StartAsync(spec, null, TimeSpan.FromSeconds(20), CancellationToken.None));
        Assert.Empty(registry.List());
        Assert.True(!Directory.Exists(registry.EnginesDirectory) || !Directory.EnumerateFileSystemEntries(registry.EnginesDirectory).Any());
        return failure;
    }

    [Fact]
    public async Task UnknownBackend()
    {
        var failure = await StartFails(new EngineSpec { Backend = "llamacpp", Python = TestPython.Path });

        Assert.Equal(ErrorIds.UnknownBackend, failure.ErrorId);
        Assert.Contains("tiny", failure.Message);
    }

    [Fact]
    public async Task MissingModelPath()
    {
        var failure = await StartFails(new EngineSpec { Backend = "torch", Model = "/nonexistent/model", Python = TestPython.Path });

        Assert.Equal(ErrorIds.ModelNotFound, failure.ErrorId);
        Assert.Equal(FailureKind.ObjectNotFound, failure.Kind);
    }

    [Fact]
    public async Task MissingPython()
    {
        var failure = await StartFails(new EngineSpec { Python = "/nonexistent/python3" });

        Assert.Equal(ErrorIds.PythonNotFound, failure.ErrorId);
        Assert.Equal(FailureKind.NotInstalled, failure.Kind);
    }

    [Fact]
    public async Task AnInterpreterThatExitsAtOnceIsAStartupFailureWithItsLog()
    {
        var script = Path.Combine(root, "broken-python");
        File.WriteAllText(script, "#!/bin/sh\necho 'this interpreter is broken' >&2\nexit 3\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var failure = await StartFails(new EngineSpec { Python = script });

        Assert.Equal(ErrorIds.EngineStartupFailed, failure.ErrorId);
        Assert.Contains("this interpreter is broken", failure.Details);
    }

    [Fact]
    public void TheEngineCommandLineCarriesTheWholeSpec()
    {
        var record = new EngineRecord
        {
            RunDirectory = "/run/x",
            Spec = new EngineSpec { Backend = "torch", Model = "llama-1b", Workers = 1, MaxModelLen = 2048, GpuMemoryUtilization = 0.5, EngineArgs = new Dictionary<string, object?> { ["b"] = 1, ["a"] = "x" } },
        };

        var line = string.Join(' ', EngineLauncher.EngineCommandLine(record));

        Assert.Equal("--run-dir /run/x --backend torch --model llama-1b --workers 1 --device auto --dtype auto --gpu-memory-utilization 0.5 --engine-args {\"a\":\"x\",\"b\":1} --max-model-len 2048", line);
    }

    [Fact]
    public void AnEngineWhoseLibzmqHasNoCurveFailsWithCurveUnavailable()
    {
        var failed = new FailedInfo { Code = "curve_unavailable", Message = "libzmq 4.3.4 (pyzmq 24.0.1) was built without CURVE (libsodium)" };

        var failure = EngineLauncher.StartupFailure(new EngineRecord { Name = "e" }, failed, string.Empty);

        Assert.Equal(ErrorIds.CurveUnavailable, failure.ErrorId);
        Assert.Equal(FailureKind.NotInstalled, failure.Kind);
        Assert.Contains("without CURVE", failure.Message);
    }
}
