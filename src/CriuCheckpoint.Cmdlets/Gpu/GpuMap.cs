using CriuCheckpoint.Core;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// Decides where each checkpointed GPU goes on restore. The driver wants a pair for every GPU a process was
/// checkpointed on when it is given any pair at all (cuCheckpointProcessRestore), so a partial map is completed here:
/// an explicit -GpuMap entry first, else the same GPU when this host has it, else the GPU at the same index.
/// </summary>
internal static class GpuMap
{
    /// <summary>
    /// The pairs for <c>cuCheckpointProcessRestore</c>, one per checkpointed GPU in their order; empty when every GPU
    /// stays where it was, which lets the driver restore as it checkpointed.
    /// </summary>
    /// <param name="checkpointedUuids">The GPUs of the host at checkpoint, by NVML index (record them all: CRIU's CUDA plugin pairs every GPU too).</param>
    /// <param name="hostUuids">This host's GPUs, by NVML index.</param>
    /// <param name="explicitMap">Checkpointed GPU UUID to this host's GPU UUID, for the GPUs the caller places itself.</param>
    public static IReadOnlyList<GpuPair> Pairs(IReadOnlyList<string> checkpointedUuids, IReadOnlyList<string> hostUuids, IReadOnlyDictionary<string, string>? explicitMap = null)
    {
        explicitMap ??= new Dictionary<string, string>();
        foreach (var (from, to) in explicitMap)
        {
            if (!checkpointedUuids.Contains(from, StringComparer.OrdinalIgnoreCase))
            {
                throw Incompatible($"The GPU map names {from}, which the checkpoint was not made on (it was made on {string.Join(", ", checkpointedUuids)}).", from);
            }

            if (!hostUuids.Contains(to, StringComparer.OrdinalIgnoreCase))
            {
                throw Incompatible($"The GPU map sends {from} to {to}, which this host does not have (it has {string.Join(", ", hostUuids)}).", to);
            }
        }

        var pairs = new List<GpuPair>();
        for (var index = 0; index < checkpointedUuids.Count; index++)
        {
            var old = checkpointedUuids[index];
            var mapped = explicitMap.FirstOrDefault(m => string.Equals(m.Key, old, StringComparison.OrdinalIgnoreCase)).Value;
            var target = mapped
                ?? hostUuids.FirstOrDefault(h => string.Equals(h, old, StringComparison.OrdinalIgnoreCase))
                ?? (index < hostUuids.Count
                    ? hostUuids[index]
                    : throw Incompatible($"The checkpoint was made on GPU {index} ({old}); this host has {hostUuids.Count} GPUs and none of that UUID. Map it with a GPU map.", old));
            pairs.Add(new GpuPair(old, target));
        }

        return pairs.All(p => string.Equals(p.OldUuid, p.NewUuid, StringComparison.OrdinalIgnoreCase)) ? Array.Empty<GpuPair>() : pairs;
    }

    private static CriuCheckpointException Incompatible(string message, string target) =>
        new(ErrorIds.CheckpointIncompatible, FailureKind.InvalidArgument, message, target);
}
