namespace CriuCheckpoint.Gpu;

/// <summary>
/// Which ready holder a restored engine may take its weights from: one that holds the same model directory, on the GPU the
/// engine lands on, read from files that have not changed since (same names, sizes and modification times). Pure.
/// </summary>
internal static class WeightHolderMatch
{
    /// <summary>The first holder that fits, or null with why none did (for -Verbose).</summary>
    public static (WeightHolder? Holder, string Reason) Find(IEnumerable<WeightHolder> holders, string model, IReadOnlyCollection<string> gpuUuids, IReadOnlyCollection<HeldFile> filesNow)
    {
        var reasons = new List<string>();
        foreach (var holder in holders)
        {
            if (Mismatch(holder, model, gpuUuids, filesNow) is { } reason)
            {
                reasons.Add($"{holder.Name}: {reason}");
                continue;
            }

            return (holder, $"holder {holder.Name} holds {model} on GPU {holder.GpuIndex}");
        }

        return (null, reasons.Count == 0 ? "no weight holder runs on this host" : string.Join("; ", reasons));
    }

    private static string? Mismatch(WeightHolder holder, string model, IReadOnlyCollection<string> gpuUuids, IReadOnlyCollection<HeldFile> filesNow)
    {
        if (holder.State != WeightHolderState.Ready || holder.Ready is not { } ready)
        {
            return $"it is {holder.State.ToString().ToLowerInvariant()}";
        }

        if (!string.Equals(Path.TrimEndingDirectorySeparator(ready.Model), Path.TrimEndingDirectorySeparator(model), StringComparison.Ordinal))
        {
            return $"it holds {ready.Model}";
        }

        if (!gpuUuids.Contains(ready.GpuUuid, StringComparer.OrdinalIgnoreCase))
        {
            return $"it is on GPU {ready.GpuUuid}, the engine lands on {string.Join(", ", gpuUuids)}";
        }

        // Modification times compared at .NET's resolution (100 ns), which FilesOf reads them at.
        var held = ready.Files.Select(f => f with { MtimeNs = f.MtimeNs / 100 * 100 }).ToHashSet();
        return held.SetEquals(filesNow) ? null : "the model's files changed since it read them";
    }

    /// <summary>The safetensors files of a model directory as they are now, as the holder records them.</summary>
    public static IReadOnlyList<HeldFile> FilesOf(string model)
    {
        if (!Directory.Exists(model))
        {
            return Array.Empty<HeldFile>();
        }

        return new DirectoryInfo(model).EnumerateFiles("*.safetensors")
            .Where(f => (f.Attributes & FileAttributes.ReparsePoint) == 0)
            .Select(f => new HeldFile { Name = f.Name, Size = f.Length, MtimeNs = (f.LastWriteTimeUtc - DateTime.UnixEpoch).Ticks * 100 })
            .ToArray();
    }
}
