using System.Globalization;
using System.Text.RegularExpressions;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// The NVIDIA device files a process holds open, read from its /proc/PID/fd links. /dev/nvidia-uvm marks a CUDA process:
/// on Linux the driver opens it in every process at cuInit, and NVML users (nvidia-smi, monitoring agents,
/// nvidia-persistenced) never do. /dev/nvidiaN is a GPU the process holds, N being the device's minor number.
/// </summary>
internal sealed partial record NvidiaDeviceFiles(IReadOnlySet<int> GpuMinorNumbers, bool UsesCuda)
{
    /// <summary>The NVIDIA devices among the targets, or null when there are none.</summary>
    public static NvidiaDeviceFiles? From(IEnumerable<string> fileDescriptorTargets)
    {
        var minors = new SortedSet<int>();
        var usesCuda = false;
        var any = false;
        foreach (var target in fileDescriptorTargets)
        {
            if (target == "/dev/nvidia-uvm")
            {
                usesCuda = true;
                any = true;
            }
            else if (GpuDevicePath().Match(target) is { Success: true } gpu)
            {
                minors.Add(int.Parse(gpu.Groups[1].Value, CultureInfo.InvariantCulture));
                any = true;
            }
        }

        return any ? new NvidiaDeviceFiles(minors, usesCuda) : null;
    }

    [GeneratedRegex(@"^/dev/nvidia(\d+)$")]
    private static partial Regex GpuDevicePath();
}
