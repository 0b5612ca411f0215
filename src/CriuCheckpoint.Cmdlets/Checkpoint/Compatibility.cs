using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Checkpoint;

/// <summary>One way a checkpoint does not fit this host: the property and both values.</summary>
public sealed record CompatibilityIssue(string Property, string Checkpoint, string Host)
{
    public override string ToString() => $"{Property}: checkpoint has '{Checkpoint}', this host has '{Host}'";
}

/// <summary>Decides whether a checkpoint can be restored on this host.</summary>
internal static class Compatibility
{
    public static IReadOnlyList<CompatibilityIssue> Check(CheckpointManifest manifest, HostFacts host, GpuSnapshot? gpus = null)
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

    private static void Compare(List<CompatibilityIssue> issues, string property, string checkpoint, string host)
    {
        if (!string.Equals(checkpoint, host, StringComparison.Ordinal))
        {
            issues.Add(new(property, checkpoint, host));
        }
    }
}
