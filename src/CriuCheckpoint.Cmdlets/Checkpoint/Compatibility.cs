using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Checkpoint;

/// <summary>One way a checkpoint does not fit this host: the property and both values.</summary>
public sealed record CompatibilityIssue(string Property, string Checkpoint, string Host)
{
    public override string ToString() => $"{Property}: checkpoint has '{Checkpoint}', this host has '{Host}'";
}

/// <summary>
/// What an engine started from this session now would run with: its environment, and the versions of the caller's
/// Python and its packages (null where no interpreter was asked, as when checkpoints are listed).
/// </summary>
internal sealed record RuntimeFacts(EnvironmentIdentity Environment, IReadOnlyDictionary<string, string>? Versions);

/// <summary>Decides whether a checkpoint can be restored on this host.</summary>
internal static class Compatibility
{
    public static IReadOnlyList<CompatibilityIssue> Check(CheckpointManifest manifest, HostFacts host, GpuSnapshot? gpus = null, RuntimeFacts? runtime = null)
    {
        // The manifest's schema is checked when it is opened (ManifestValidation): a manifest of another schema is
        // refused before its fields are read at all.
        var issues = new List<CompatibilityIssue>();
        Compare(issues, "Architecture", manifest.Host.Architecture, host.Architecture);
        Compare(issues, "CpuModel", manifest.Host.CpuModel, host.CpuModel);
        Compare(issues, "Kernel", manifest.Host.Kernel, host.Kernel);
        if (Version.TryParse(manifest.Host.CriuVersion, out var dumped) && Version.TryParse(host.CriuVersion, out var restoring)
            && (restoring.Major, restoring.Minor).CompareTo((dumped.Major, dumped.Minor)) < 0)
        {
            issues.Add(new("CriuVersion", manifest.Host.CriuVersion, host.CriuVersion));
        }

        if (manifest.Gpu is { } gpu)
        {
            var devices = gpus?.Devices ?? Array.Empty<GpuDevice>();
            Compare(issues, "GpuDriver", gpu.DriverVersion, devices.FirstOrDefault()?.DriverVersion ?? "none");
            Compare(issues, "GpuModel", string.Join(", ", gpu.DeviceNames.Distinct()), devices.Count == 0 ? "none" : string.Join(", ", devices.Select(d => d.Name).Distinct()));
            if (devices.Count < gpu.DeviceUuids.Count)
            {
                issues.Add(new("GpuCount", gpu.DeviceUuids.Count.ToString(), devices.Count.ToString()));
            }
        }

        if (manifest.Runtime is { } recorded && runtime is not null)
        {
            CompareRuntime(issues, recorded, runtime);
        }

        foreach (var file in manifest.MappedFiles)
        {
            var now = File.Exists(file.Path) ? new FileInfo(file.Path).Length.ToString() : "missing";
            if (now != file.Size.ToString())
            {
                issues.Add(new($"File {file.Path}", $"{file.Size} bytes", now == "missing" ? now : $"{now} bytes"));
            }
        }

        return issues;
    }

    /// <summary>
    /// The engine's environment (by its hash: the values may be secrets) and the version of each package it recorded:
    /// a restored engine runs the interpreter and libraries of its image, with files mapped from this host.
    /// </summary>
    private static void CompareRuntime(List<CompatibilityIssue> issues, EngineRuntime recorded, RuntimeFacts runtime)
    {
        if (!string.Equals(recorded.Environment.Sha256, runtime.Environment.Sha256, StringComparison.Ordinal))
        {
            issues.Add(new("Environment", recorded.Environment.ToString(), runtime.Environment.ToString()));
        }

        if (runtime.Versions is not { } versions)
        {
            return;
        }

        foreach (var (package, version) in recorded.Versions.OrderBy(v => v.Key, StringComparer.Ordinal))
        {
            Compare(issues, $"Version {package}", version, versions.GetValueOrDefault(package) ?? "none");
        }
    }

    private static void Compare(List<CompatibilityIssue> issues, string property, string checkpoint, string host)
    {
        if (!string.Equals(checkpoint, host, StringComparison.Ordinal))
        {
            issues.Add(new(property, checkpoint, host));
        }
    }
}

/// <summary>
/// This host as every checkpoint a cmdlet writes is compared with it: its facts with the criu a restore would run, and
/// its GPUs, read once and only for a checkpoint that holds GPU state (a CPU checkpoint never loads a driver).
/// </summary>
internal sealed class HostComparison
{
    private readonly HostFacts host;
    private readonly Lazy<GpuSnapshot?> gpus;

    public HostComparison(HostFacts host, IGpuInventory gpus)
    {
        this.host = host;
        this.gpus = new(() => TryCollect(gpus));
    }

    /// <summary>This host with the criu the module finds for <paramref name="criuPath"/>; none found is no version to compare.</summary>
    public static async Task<HostComparison> ForHostAsync(CheckpointServices services, string? criuPath, CancellationToken cancellationToken)
    {
        string criuVersion;
        try
        {
            criuVersion = (await services.Criu.LocateAsync(criuPath, cancellationToken).ConfigureAwait(false)).Version.ToString();
        }
        catch (CriuCheckpointException)
        {
            criuVersion = "not found";
        }

        return new HostComparison(services.Host.Facts(criuVersion, string.Empty), services.Gpus);
    }

    public IReadOnlyList<CompatibilityIssue> Issues(CheckpointManifest manifest) =>
        Compatibility.Check(manifest, host, manifest.Gpu is null ? null : gpus.Value, new RuntimeFacts(EnvironmentIdentity.OfProcess(), null));

    /// <summary>The checkpoint with its Compatible and CompatibilityIssues filled in.</summary>
    public EngineCheckpoint Compare(EngineCheckpoint checkpoint) => checkpoint with { CompatibilityIssues = Issues(checkpoint.Manifest) };

    /// <summary>No driver is no GPU: then a GPU checkpoint differs in GpuDriver and GpuModel ("none").</summary>
    private static GpuSnapshot? TryCollect(IGpuInventory gpus)
    {
        try
        {
            return gpus.Collect(Array.Empty<int>());
        }
        catch (CriuCheckpointException)
        {
            return null;
        }
    }
}
