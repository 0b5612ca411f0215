using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// Which interpreter runs the engine host: the one named, or the first on PATH (then Debian's) that can import its
/// packages. The interpreters are files in a temporary folder; a fake probe says what each one lacks.
/// </summary>
public sealed class PythonLocatorTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("python-locator-").FullName;
    private readonly FakePythonProbe probe = new();
    private readonly Dictionary<string, string?> environment = new();

    public void Dispose() => Directory.Delete(root, recursive: true);

    private PythonLocator Locator() => new(probe, name => environment.GetValueOrDefault(name));

    /// <summary>An executable python3 in its own folder of <see cref="root"/>, as pyenv or a virtual environment has one.</summary>
    private string Python(string folder)
    {
        var directory = Directory.CreateDirectory(Path.Combine(root, folder)).FullName;
        var path = Path.Combine(directory, "python3");
        File.WriteAllText(path, "#!/bin/sh\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private Task<string> Resolve(string? requested = null) => Locator().ResolveAsync(requested, NullObserver.Instance, CancellationToken.None);

    [Fact]
    public async Task The_first_python3_on_path_that_has_the_packages_is_chosen_past_one_that_lacks_them()
    {
        var pyenv = Python("pyenv");
        var system = Python("system");
        probe.Lacking[pyenv] = ["zmq", "msgpack", "numpy"];
        environment["PATH"] = $"{Path.GetDirectoryName(pyenv)}:{Path.GetDirectoryName(system)}";

        Assert.Equal(system, await Resolve());
        Assert.Equal([pyenv, system], probe.Asked);
    }

    [Fact]
    public void Without_a_name_the_candidates_are_each_python3_on_path_in_order_then_debians()
    {
        var first = Python("first");
        var second = Python("second");
        Directory.CreateDirectory(Path.Combine(root, "none"));
        environment["PATH"] = string.Join(':', Path.GetDirectoryName(first), Path.Combine(root, "none"), Path.GetDirectoryName(second));

        var candidates = Locator().Candidates(null);

        Assert.Equal([first, second, PythonLocator.SystemPython], candidates.Select(c => c.Path));
        Assert.Equal(["PATH", "PATH", "Debian's python3"], candidates.Select(c => c.Source));
    }

    [Fact]
    public void Debians_python3_is_tried_once_when_it_is_on_path()
    {
        environment["PATH"] = "/usr/bin:/usr/bin";

        Assert.Equal([PythonLocator.SystemPython], Locator().Candidates(null).Select(c => c.Path));
    }

    [Fact]
    public async Task Python_path_is_the_only_candidate_even_when_another_would_do()
    {
        var venv = Python("venv");
        var system = Python("system");
        environment["PATH"] = Path.GetDirectoryName(system);
        environment[PythonLocator.EnvironmentVariable] = system;
        probe.Lacking[venv] = ["numpy"];

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Resolve(venv));

        Assert.Equal(ErrorIds.PythonPackageMissing, failure.ErrorId);
        Assert.Equal([venv], probe.Asked);
    }

    [Fact]
    public async Task The_variable_is_the_only_candidate_when_no_python_path_is_given()
    {
        var configured = Python("configured");
        environment["PATH"] = Path.GetDirectoryName(Python("on-path"));
        environment[PythonLocator.EnvironmentVariable] = configured;

        Assert.Equal(configured, await Resolve());
        Assert.Equal([configured], probe.Asked);
    }

    [Fact]
    public async Task When_none_can_run_the_engine_the_error_names_what_each_lacked_python_path_and_the_variable()
    {
        var pyenv = Python("pyenv");
        environment["PATH"] = Path.GetDirectoryName(pyenv);
        probe.Lacking[pyenv] = ["zmq", "numpy"];
        probe.Lacking[PythonLocator.SystemPython] = [PythonProbeResult.Curve];

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Resolve());

        Assert.Equal(ErrorIds.PythonPackageMissing, failure.ErrorId);
        Assert.Equal(FailureKind.NotInstalled, failure.Kind);
        Assert.Contains($"{pyenv} (PATH) cannot import zmq, numpy", failure.Message);
        Assert.Contains($"{PythonLocator.SystemPython} (Debian's python3) has no CURVE in its libzmq", failure.Message);
        Assert.Contains("-PythonPath", failure.Message);
        Assert.Contains("$CRIUCHECKPOINT_PYTHON", failure.Message);
    }

    [Fact]
    public async Task An_interpreter_whose_only_lack_is_curve_is_curve_unavailable()
    {
        var python = Python("no-curve");
        probe.Lacking[python] = [PythonProbeResult.Curve];

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Resolve(python));

        Assert.Equal(ErrorIds.CurveUnavailable, failure.ErrorId);
    }

    [Fact]
    public async Task A_named_interpreter_that_is_not_there_is_python_not_found()
    {
        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Resolve(Path.Combine(root, "missing", "python3")));

        Assert.Equal(ErrorIds.PythonNotFound, failure.ErrorId);
        Assert.Contains("is not there or not executable", failure.Message);
        Assert.Empty(probe.Asked);
    }

    [Fact]
    public async Task An_interpreter_that_cannot_run_the_engine_host_is_a_startup_failure_with_its_output()
    {
        var broken = Python("broken");
        probe.Failing[broken] = new PythonProbeResult([], "cannot run the engine host (exit code 3)", "this interpreter is broken");

        var failure = await Assert.ThrowsAsync<CriuCheckpointException>(() => Resolve(broken));

        Assert.Equal(ErrorIds.EngineStartupFailed, failure.ErrorId);
        Assert.Contains("this interpreter is broken", failure.Details);
    }

    [Fact]
    public async Task A_choice_is_kept_for_the_same_settings_and_made_again_for_others()
    {
        var system = Python("system");
        var other = Python("other");
        environment["PATH"] = Path.GetDirectoryName(system);
        var locator = Locator();

        await locator.ResolveAsync(null, NullObserver.Instance, CancellationToken.None);
        await locator.ResolveAsync(null, NullObserver.Instance, CancellationToken.None);
        environment["PATH"] = Path.GetDirectoryName(other);
        var afterChange = await locator.ResolveAsync(null, NullObserver.Instance, CancellationToken.None);

        Assert.Equal([system, other], probe.Asked);
        Assert.Equal(other, afterChange);
    }

    [Fact]
    public async Task Passing_over_an_interpreter_says_why_in_the_verbose_stream()
    {
        var pyenv = Python("pyenv");
        var system = Python("system");
        probe.Lacking[pyenv] = ["zmq"];
        environment["PATH"] = $"{Path.GetDirectoryName(pyenv)}:{Path.GetDirectoryName(system)}";
        var observer = new RecordingObserver();

        await Locator().ResolveAsync(null, observer, CancellationToken.None);

        Assert.Equal([$"The engine host runs under {system} (PATH); {pyenv} (PATH) cannot import zmq."], observer.VerboseMessages);
    }

    [Fact]
    public async Task The_real_probe_finds_what_the_engines_python_has_and_what_it_lacks_without_site_packages()
    {
        var withoutSite = Path.Combine(root, "python-without-site");
        File.WriteAllText(withoutSite, $"#!/bin/sh\nexec {TestPython.Path} -S \"$@\"\n");
        File.SetUnixFileMode(withoutSite, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var observer = new RecordingObserver();

        var works = await new PythonProbe().ProbeAsync(TestPython.Path, observer, CancellationToken.None);
        var lacks = await new PythonProbe().ProbeAsync(withoutSite, observer, CancellationToken.None);

        Assert.True(works.Usable);
        Assert.Equal(["zmq", "msgpack", "numpy"], lacks.Lacks);
        Assert.Contains($"{TestPython.Path} -m engine_host --check-dependencies", observer.DebugLines);
    }

    private sealed class FakePythonProbe : IPythonProbe
    {
        public Dictionary<string, string[]> Lacking { get; } = new();

        public Dictionary<string, PythonProbeResult> Failing { get; } = new();

        public List<string> Asked { get; } = new();

        public Task<PythonProbeResult> ProbeAsync(string python, IOperationObserver observer, CancellationToken cancellationToken)
        {
            Asked.Add(python);
            return Task.FromResult(Failing.GetValueOrDefault(python) ?? new PythonProbeResult(Lacking.GetValueOrDefault(python) ?? [], null));
        }
    }
}
