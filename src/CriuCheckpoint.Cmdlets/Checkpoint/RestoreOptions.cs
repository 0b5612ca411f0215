namespace CriuCheckpoint.Checkpoint;

internal sealed record RestoreOptions
{
    public int Count { get; init; } = 1;

    /// <summary>Name of the restored engine; with several replicas each gets "-1", "-2", … appended.</summary>
    public string? Name { get; init; }

    /// <summary>Restore despite compatibility differences (architecture, CPU, kernel, CRIU, mapped files).</summary>
    public bool Force { get; init; }

    public string? CriuPath { get; init; }

    /// <summary>
    /// The interpreter the replica's namespace script runs and its record names (-PythonPath): the caller's choice,
    /// never the manifest's, which anyone who handed over the checkpoint could have written.
    /// </summary>
    public string? PythonPath { get; init; }

    /// <summary>Skip the hashes (sizes are still compared, ownership still checked): for stores the user trusts.</summary>
    public bool SkipVerify { get; init; }

    /// <summary>Bound on criu restore plus resume: CRIU 4.2 can hang on damaged images, so this is never infinite.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>GPU processes the driver restores at once; 0 for all of them.</summary>
    public int CudaThrottleLimit { get; init; }

    /// <summary>
    /// Restore into this host's PID namespace with the recorded PIDs (the KV-in-image baseline does): one replica, and only
    /// once the original and every other copy have exited (criu fails when a PID is taken).
    /// </summary>
    public bool HostPidNamespace { get; init; }

    /// <summary>
    /// Have criu read the pages image with O_DIRECT and native AIO (criu 4.3 and newer; an older one reads through the
    /// page cache, with a warning).
    /// </summary>
    public bool DirectImageReads { get; init; }

    /// <summary>Let replicas serve without answering the manifest's canary first.</summary>
    public bool SkipCanary { get; init; }

    /// <summary>Map a -WeightsFromSource checkpoint's weights from a weight holder of its model on the replica's GPU, when one runs.</summary>
    public bool UseWeightHolder { get; init; } = true;
    /// <summary>
    /// Leave the model's weight files to the engines: no read of them into the page cache beside criu and the CUDA
    /// restore (for a checkpoint saved with weights from source), so a bench can time a restore with and without it.
    /// </summary>
    public bool SkipWeightPrefetch { get; init; }
}
