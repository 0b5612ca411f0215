using System.Collections.Concurrent;
using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>One interpreter the locator tries, and where it came from (for messages).</summary>
internal sealed record PythonCandidate(string Source, string Path);

/// <summary>
/// Finds the Python that runs the engine host: the interpreter named by -PythonPath, else by $CRIUCHECKPOINT_PYTHON,
/// else the first of each python3 on PATH and /usr/bin/python3 that can import the engine host's packages. Debian
/// installs those for /usr/bin/python3, which is often not the python3 first on PATH (pyenv, a virtual environment).
/// A named interpreter is never replaced by another: it may be the only one with vLLM, and running a different one
/// would silently run a different backend. Each choice is remembered for the life of the process.
/// </summary>
internal sealed class PythonLocator
{
    public const string EnvironmentVariable = "CRIUCHECKPOINT_PYTHON";

    /// <summary>Where Debian's python3-zmq, python3-msgpack and python3-numpy are installed.</summary>
    public const string SystemPython = "/usr/bin/python3";

    private readonly ConcurrentDictionary<string, string> chosen = new(StringComparer.Ordinal);

    private readonly IPythonProbe probe;
    private readonly Func<string, string?> environment;

    public PythonLocator(IPythonProbe probe, Func<string, string?> environment)
    {
        this.probe = probe;
        this.environment = environment;
    }

    /// <summary>The locator of this process: what it chose for a setting of the variables is kept as long as the module is loaded.</summary>
    public static PythonLocator Host { get; } = new(new PythonProbe(), Environment.GetEnvironmentVariable);

    /// <summary>The interpreters to try, in order: the one named, or each python3 on PATH, then Debian's.</summary>
    public IReadOnlyList<PythonCandidate> Candidates(string? requested)
    {
        if (!string.IsNullOrEmpty(requested))
        {
            return [new PythonCandidate("-PythonPath", requested)];
        }

        if (environment(EnvironmentVariable) is { Length: > 0 } configured)
        {
            return [new PythonCandidate($"${EnvironmentVariable}", configured)];
        }

        return Executables.FindAll("python3", environment("PATH") ?? string.Empty)
            .Select(path => new PythonCandidate("PATH", path))
            .Append(new PythonCandidate("Debian's python3", SystemPython))
            .DistinctBy(candidate => candidate.Path, StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>The first candidate that can run the engine host, or an error naming what each one lacked.</summary>
    public async Task<string> ResolveAsync(string? requested, IOperationObserver observer, CancellationToken cancellationToken)
    {
        // A new PYTHONPATH can make another interpreter able to run the engine host, a new PATH can offer another one.
        var key = string.Join('\0', requested, environment(EnvironmentVariable), environment("PATH"), environment("PYTHONPATH"));
        if (chosen.TryGetValue(key, out var known))
        {
            return known;
        }

        var tried = new List<(PythonCandidate Candidate, PythonProbeResult Result)>();
        foreach (var candidate in Candidates(requested))
        {
            var path = Executables.Find(candidate.Path);
            var result = path is null ? PythonProbeResult.NotFound : await probe.ProbeAsync(path, observer, cancellationToken).ConfigureAwait(false);
            if (path is not null && result.Usable)
            {
                if (tried.Count > 0)
                {
                    observer.Verbose($"The engine host runs under {path} ({candidate.Source}); {Describe(tried)}.");
                }

                return chosen.GetOrAdd(key, path);
            }

            tried.Add((candidate, result));
        }

        throw NoUsablePython(tried);
    }

    /// <summary>
    /// The first candidate that is there, asked nothing: for what runs with the standard library alone (a restore's
    /// namespace script, python -I -S).
    /// </summary>
    public string FindInterpreter(string? requested)
    {
        var candidates = Candidates(requested);
        return candidates.Select(c => Executables.Find(c.Path)).FirstOrDefault(path => path is not null)
            ?? throw NoUsablePython(candidates.Select(c => (c, PythonProbeResult.NotFound)).ToArray());
    }

    private static CriuCheckpointException NoUsablePython(IReadOnlyList<(PythonCandidate Candidate, PythonProbeResult Result)> tried)
    {
        var lacking = tried.Where(t => t.Result.Lacks.Count > 0).Select(t => t.Result).ToArray();
        var failing = tried.Where(t => t.Result.Failure is not null && !ReferenceEquals(t.Result, PythonProbeResult.NotFound)).ToArray();
        var advice = lacking.Length > 0
            ? $"Pass -PythonPath or set ${EnvironmentVariable} to an interpreter that can import zmq (with CURVE), msgpack and numpy "
                + "(Debian: apt-get install python3-zmq python3-msgpack python3-numpy, for /usr/bin/python3)."
            : $"Pass -PythonPath or set ${EnvironmentVariable}.";
        var message = lacking.Length == 0 && failing.Length == 0
            ? $"No Python interpreter was found: {Describe(tried)}. {advice}"
            : $"No Python can run the engine host: {Describe(tried)}. {advice}";
        // What is wrong with the interpreters that are there decides: they are what the user meant to run.
        var (errorId, kind) =
            lacking.Length > 0 && lacking.All(r => r.OnlyLacksCurve) ? (ErrorIds.CurveUnavailable, FailureKind.NotInstalled)
            : lacking.Length > 0 ? (ErrorIds.PythonPackageMissing, FailureKind.NotInstalled)
            : failing.Length > 0 ? (ErrorIds.EngineStartupFailed, FailureKind.InvalidOperation)
            : (ErrorIds.PythonNotFound, FailureKind.NotInstalled);
        var details = string.Join(Environment.NewLine, tried.Where(t => t.Result.Output is { Length: > 0 }).Select(t => $"{t.Candidate.Path}:{Environment.NewLine}{t.Result.Output}"));
        return new CriuCheckpointException(errorId, kind, message, tried.Count == 1 ? tried[0].Candidate.Path : null, details: details);
    }

    private static string Describe(IEnumerable<(PythonCandidate Candidate, PythonProbeResult Result)> tried) =>
        string.Join("; ", tried.Select(t => $"{t.Candidate.Path} ({t.Candidate.Source}) {t.Result.Shortfall}"));
}

/// <summary>Asks one interpreter whether it can run the engine host.</summary>
internal interface IPythonProbe
{
    Task<PythonProbeResult> ProbeAsync(string python, IOperationObserver observer, CancellationToken cancellationToken);
}

/// <summary>What one interpreter lacks to run the engine host: packages, CURVE in its libzmq, or the ability to run at all.</summary>
internal sealed record PythonProbeResult(IReadOnlyList<string> Lacks, string? Failure, string? Output = null)
{
    public const string Curve = "CURVE in its libzmq";

    public static PythonProbeResult NotFound { get; } = new([], "is not there or not executable");

    public bool Usable => Lacks.Count == 0 && Failure is null;

    public bool OnlyLacksCurve => Failure is null && Lacks.SequenceEqual([Curve]);

    /// <summary>What it lacks, in words: "cannot import zmq, numpy", "has no CURVE in its libzmq", "is not there or not executable".</summary>
    public string Shortfall
    {
        get
        {
            if (Failure is not null)
            {
                return Failure;
            }

            var packages = Lacks.Where(l => l != Curve).ToArray();
            var parts = new List<string>();
            if (packages.Length > 0)
            {
                parts.Add($"cannot import {string.Join(", ", packages)}");
            }

            if (Lacks.Contains(Curve))
            {
                parts.Add($"has no {Curve}");
            }

            return string.Join(" and ", parts);
        }
    }
}
