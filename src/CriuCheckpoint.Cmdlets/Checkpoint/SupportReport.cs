using CliWrap.Buffered;
using CliWrap;
using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Whether this host can checkpoint and restore engines, and if not, why (Test-EngineCheckpointSupport).</summary>
public sealed class SupportReport
{
    public bool Supported => Problems.Count == 0;

    public string? CriuPath { get; init; }

    public string? CriuVersion { get; init; }

    public bool CriuCheckPassed { get; init; }

    public string CriuCheckOutput { get; init; } = string.Empty;

    public string Kernel { get; init; } = string.Empty;

    public string Architecture { get; init; } = string.Empty;

    public bool IsRoot { get; init; }

    public bool HasCheckpointCapabilities { get; init; }

    /// <summary>The NVIDIA driver version when one is loaded; null on hosts without a GPU driver.</summary>
    public string? GpuDriver { get; init; }

    /// <summary>The host's transparent huge page mode (always, madvise or never); null where the kernel has none.</summary>
    public string? TransparentHugePages { get; init; }

    public IReadOnlyList<string> Problems { get; init; } = Array.Empty<string>();

    /// <summary>Host settings that would make restores faster; none of them is needed.</summary>
    public IReadOnlyList<string> Advice { get; init; } = Array.Empty<string>();

    /// <summary>"Supported", or "Not supported: " and the problems.</summary>
    public override string ToString() => Supported ? "Supported" : "Not supported: " + string.Join("; ", Problems);

    internal static async Task<SupportReport> CollectAsync(string? criuPath, IOperationObserver observer, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var host = HostInspector.Collect(string.Empty, string.Empty);
        var isRoot = HostInspector.IsRoot();
        var capabilities = Preflight.HasCapabilities(21, 40);
        if (!isRoot && !capabilities)
        {
            problems.Add("Not root, and without CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE.");
        }

        CriuTool? criu = null;
        try
        {
            criu = await CriuTool.LocateAsync(criuPath, observer, cancellationToken).ConfigureAwait(false);
        }
        catch (CriuCheckpointException e)
        {
            problems.Add(e.Message);
        }

        var (checkPassed, checkOutput) = criu is null ? (false, string.Empty) : await CheckAsync(criu, problems, observer, cancellationToken).ConfigureAwait(false);
        var hugePages = ReadTransparentHugePages();
        return new SupportReport
        {
            CriuPath = criu?.Path,
            CriuVersion = criu?.Version.ToString(),
            CriuCheckPassed = checkPassed,
            CriuCheckOutput = checkOutput,
            Kernel = host.Kernel,
            Architecture = host.Architecture,
            IsRoot = isRoot,
            HasCheckpointCapabilities = isRoot || capabilities,
            GpuDriver = ReadNvidiaDriverVersion(),
            TransparentHugePages = hugePages,
            Problems = problems,
            Advice = AdviceFor(hugePages),
        };
    }

    /// <summary>'criu check': whether this kernel has every feature criu needs; a failure is a problem quoting it.</summary>
    private static async Task<(bool Passed, string Output)> CheckAsync(CriuTool criu, List<string> problems, IOperationObserver observer, CancellationToken cancellationToken)
    {
        observer.Debug(CommandLine.Format([criu.Path, "check"]));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var check = await Cli.Wrap(criu.Path).WithArguments("check").WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync(timeout.Token).ConfigureAwait(false);
        var output = (check.StandardOutput + check.StandardError).Trim();
        if (check.ExitCode != 0)
        {
            problems.Add($"'criu check' failed (exit code {check.ExitCode}): {output}");
        }

        return (check.ExitCode == 0, output);
    }

    private static List<string> AdviceFor(string? hugePages)
    {
        var advice = new List<string>();
        if (hugePages is not null && hugePages != "always")
        {
            advice.Add($"Transparent huge pages are '{hugePages}': with 'always' (/sys/kernel/mm/transparent_hugepage/enabled) criu restores "
                + "an engine's memory about 1.6x faster (measured on an H200 host, docs/performance.md). This module leaves the setting as it is.");
        }

        return advice;
    }

    /// <summary>The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled, e.g. "always [madvise] never".</summary>
    internal static string? ReadTransparentHugePages(string path = "/sys/kernel/mm/transparent_hugepage/enabled")
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var text = File.ReadAllText(path);
        var open = text.IndexOf('[', StringComparison.Ordinal);
        var close = text.IndexOf(']', open + 1);
        return open >= 0 && close > open ? text[(open + 1)..close] : null;
    }

    /// <summary>/proc/driver/nvidia/version names the loaded kernel module's version; absent without a driver.</summary>
    private static string? ReadNvidiaDriverVersion()
    {
        const string path = "/proc/driver/nvidia/version";
        if (!File.Exists(path))
        {
            return null;
        }

        var words = File.ReadLines(path).FirstOrDefault()?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? Array.Empty<string>();
        return words.FirstOrDefault(w => w.Count(c => c == '.') >= 1 && char.IsDigit(w[0]));
    }
}
