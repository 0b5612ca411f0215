using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Checkpoint;

/// <summary>One save as its steps build it up: what each step found or made, for the steps after it.</summary>
internal sealed class SaveContext
{
    public SaveContext(EngineInfo engine, CheckpointStore store, SaveOptions options, CheckpointServices services, IOperationObserver observer)
    {
        Engine = engine;
        Store = store;
        Options = options;
        Services = services;
        Observer = observer;
    }

    public EngineInfo Engine { get; }

    public EngineRecord Record => Engine.Record;

    public CheckpointStore Store { get; }

    public SaveOptions Options { get; }

    public CheckpointServices Services { get; }

    public IOperationObserver Observer { get; }

    /// <summary>The save's progress bar.</summary>
    public string Activity => $"Saving engine {Engine.Name} to {Store.Path}";

    public PhaseTimings Timings { get; } = new();

    public CudaCheckpointOptions CudaOptions => new() { MaxParallelism = Options.CudaThrottleLimit };

    /// <summary>Found by Preflight.</summary>
    public CriuTool? Criu { get; set; }

    /// <summary>What the tree held on each GPU (by UUID) while it served, read by Preflight.</summary>
    public IReadOnlyDictionary<string, long> ServingGpuBytes { get; set; } = new Dictionary<string, long>();

    /// <summary>The tree as Prepare left it: quiet, and still alive.</summary>
    public ProcessTree Tree { get; set; } = ProcessTree.Empty;

    public List<MappedFile> MappedFiles { get; set; } = new();

    /// <summary>The engine's answer to the canary at prepare; null with -SkipCanary.</summary>
    public CheckpointCanary? Canary { get; set; }

    /// <summary>The engine's inventory of its tree at prepare.</summary>
    public EngineRuntime? Runtime { get; set; }

    /// <summary>Set by CheckpointCuda when the tree uses CUDA.</summary>
    public GpuManifest? Gpu { get; set; }

    /// <summary>What CheckSpace expects the image to take.</summary>
    public long EstimatedImageBytes { get; set; }

    /// <summary>The images with their sizes and hashes, from HashImages.</summary>
    public List<ImageFile> Images { get; set; } = new();

    /// <summary>Where Dump writes, until Publish renames it.</summary>
    public string? Staging { get; set; }

    /// <summary>The result: the published checkpoint (or the one that already held this configuration).</summary>
    public EngineCheckpoint? Checkpoint { get; set; }

    /// <summary>The engine when it serves on after the save.</summary>
    public EngineInfo? Serving { get; set; }
}
