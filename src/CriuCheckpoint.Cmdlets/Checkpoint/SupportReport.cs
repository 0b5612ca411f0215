using CliWrap;
using CliWrap.Buffered;
using CriuCheckpoint.Engine;

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

    public IReadOnlyList<string> Problems { get; init; } = Array.Empty<string>();

    public static async Task<SupportReport> CollectAsync(string? criuPath, CancellationToken cancellationToken)
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
            criu = await CriuTool.LocateAsync(criuPath, cancellationToken).ConfigureAwait(false);
        }
        catch (CriuCheckpointException e)
        {
            problems.Add(e.Message);
        }

        var checkOutput = string.Empty;
        var checkPassed = false;
        if (criu is not null)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            var check = await Cli.Wrap(criu.Path).WithArguments("check").WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(timeout.Token).ConfigureAwait(false);
            checkOutput = (check.StandardOutput + check.StandardError).Trim();
            checkPassed = check.ExitCode == 0;
            if (!checkPassed)
            {
                problems.Add($"'criu check' failed (exit code {check.ExitCode}): {checkOutput}");
            }
        }

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
            Problems = problems,
        };
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
