using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Everything save and restore reach outside this process, built once per cmdlet call and injected, so every step
/// and every rollback path runs in unit tests against fakes.
/// </summary>
internal sealed class CheckpointServices
{
    public required EngineRegistry Registry { get; init; }

    public required ProcFs ProcFs { get; init; }

    public required ICriuRunner Criu { get; init; }

    /// <summary>Opens the driver's checkpoint API; called only when a tree uses CUDA, so CPU hosts never load a driver.</summary>
    public required Func<ICudaCheckpointApi> OpenCudaApi { get; init; }

    public required IGpuInventory Gpus { get; init; }

    public required IHostSystem Host { get; init; }

    public required IEngineControl Engines { get; init; }

    /// <summary>Finds the interpreter a restore runs its namespace script with and records.</summary>
    public required PythonLocator Python { get; init; }

    /// <summary>Reads a model's weight files into the page cache beside a restore (PrefetchWeights).</summary>
    public required IWeightPrefetcher WeightPrefetcher { get; init; }

    public TimeProvider Clock { get; init; } = TimeProvider.System;

    public static CheckpointServices ForHost(EngineRegistry registry, IOperationObserver observer) => new()
    {
        Registry = registry,
        ProcFs = ProcFs.Host,
        Criu = new CriuRunner(observer),
        OpenCudaApi = CudaCheckpointApi.Open,
        Gpus = GpuInventory.ForHost(),
        Host = new HostSystem(),
        Engines = new EngineControl(registry, ProcFs.Host),
        Python = PythonLocator.Host,
        WeightPrefetcher = new WeightPrefetcher(),
    };
}
