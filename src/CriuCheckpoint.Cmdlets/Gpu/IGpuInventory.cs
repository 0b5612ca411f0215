namespace CriuCheckpoint.Gpu;

/// <summary>The GPUs of a host and the processes using them; an interface so save and restore are testable without a GPU.</summary>
internal interface IGpuInventory
{
    /// <summary>Whether any of the processes has initialised CUDA, answered without loading a driver.</summary>
    bool AnyUsesCuda(IEnumerable<int> processIds);

    /// <summary>The GPUs and, with <paramref name="among"/>, only those processes' GPU use. Throws GpuDriverNotFound without a driver.</summary>
    GpuSnapshot Collect(IReadOnlyCollection<int>? among = null);
}
