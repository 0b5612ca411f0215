using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Checkpoint;

/// <summary>One restore request before its replicas exist: what Validate checks and finds.</summary>
internal sealed class RestoreRequest : IDisposable
{
    public RestoreRequest(EngineCheckpoint checkpoint, RestoreOptions options, CheckpointServices services, IOperationObserver observer)
    {
        Checkpoint = checkpoint;
        Options = options;
        Services = services;
        Observer = observer;
    }

    public EngineCheckpoint Checkpoint { get; }

    public RestoreOptions Options { get; }

    public CheckpointServices Services { get; }

    public IOperationObserver Observer { get; }

    /// <summary>The restore's progress bar; each replica's bar is nested under it.</summary>
    public string Activity => $"Restoring from {Checkpoint.Path}";

    /// <summary>Found by Validate.</summary>
    public CriuTool? Criu { get; set; }

    /// <summary>The interpreter found by Validate from the caller's choice.</summary>
    public string Python { get; set; } = string.Empty;

    /// <summary>The checkpoint, opened and checked before the manifest was read: its files and criu's images are read through it.</summary>
    public TrustedCheckpoint? Trusted { get; init; }

    /// <summary>Where the checkpoint's files are read: through the checked descriptor when there is one.</summary>
    public string ReadPath => Trusted?.ReadPath ?? Checkpoint.Path;

    public TimeSpan Validated { get; set; }

    /// <summary>The holder whose weights replicas map at resume, found by Validate; null: they read the model's files.</summary>
    public WeightHolder? WeightHolder { get; set; }

    /// <summary>How long VerifyImages took to compare the files with the manifest.</summary>
    public TimeSpan Verified { get; set; }

    /// <summary>Started by PrefetchWeights when the engines read their weights from the model's files at resume.</summary>
    public WeightPrefetch? Prefetch { get; set; }

    /// <summary>Stops the weight prefetch and waits for it (again: the first stop's result); null when none ran or it failed.</summary>
    public Task<WeightPrefetchResult?> StopPrefetchAsync() => Prefetch?.StopAsync() ?? Task.FromResult<WeightPrefetchResult?>(null);

    /// <summary>Replica <paramref name="index"/>'s name: -Name, with "-1", "-2", … appended when there are several.</summary>
    public string? ReplicaName(int index) =>
        Options.Name is null ? null : Options.Count == 1 ? Options.Name : $"{Options.Name}-{index}";

    public void Dispose()
    {
        Prefetch?.Dispose();
        Trusted?.Dispose();
    }
}

/// <summary>One replica's restore as its steps build it up.</summary>
internal sealed class RestoreContext
{
    public RestoreContext(RestoreRequest request, int index)
    {
        Request = request;
        Index = index;
        Observer = request.Observer.Under(request.Activity);
        Timings.Add("validate", request.Validated);
        Timings.Add("verify", request.Verified);
    }

    public RestoreRequest Request { get; }

    public int Index { get; }

    public EngineCheckpoint Checkpoint => Request.Checkpoint;

    public CheckpointManifest Manifest => Request.Checkpoint.Manifest;

    public RestoreOptions Options => Request.Options;

    public CheckpointServices Services => Request.Services;

    /// <summary>The request's observer, with this replica's progress bar nested under the restore's.</summary>
    public IOperationObserver Observer { get; }

    /// <summary>This replica's progress bar.</summary>
    public string Activity => $"Restoring {Describe} from {Checkpoint.Path}";

    public PhaseTimings Timings { get; } = new();

    /// <summary>Made by MakeRunDirectory.</summary>
    public EngineRecord Record { get; set; } = new();

    /// <summary>Started by RestoreProcesses.</summary>
    public CriuSession? Session { get; set; }

    /// <summary>Opened by RestoreProcesses once criu has finished and the engine waits on it; closed by Resume.</summary>
    public IResumeFifo? Fifo { get; set; }

    /// <summary>The result, from Verify.</summary>
    public EngineInfo? Engine { get; set; }

    public string Describe => $"replica {Index} of {Options.Count}";
}
