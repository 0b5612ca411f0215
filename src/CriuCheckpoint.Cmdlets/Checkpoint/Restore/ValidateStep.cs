using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Gpu;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Everything that can be checked before any process starts, once for all replicas: the recorded run directory's
/// registry, privileges, criu, the interpreter the namespace script runs (the caller's, never the manifest's),
/// compatibility with this host (failing with the property and both values unless -Force) and the replicas' names. The manifest's own fields were
/// validated when the checkpoint was opened, after its ownership and modes were checked on descriptors
/// (CheckpointRestorer, StoreTrust); the files' sizes and hashes are VerifyImagesStep's.
/// </summary>
internal sealed class ValidateStep : IStep<RestoreRequest>
{
    public string Name => "Validate";

    public int PercentAtStart => 0;

    public string Describe(RestoreRequest context) => $"Validating {context.Checkpoint.Path}";

    public async Task<StepOutcome> RunAsync(RestoreRequest context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var options = context.Options;
        if (options.HostPidNamespace && options.Count != 1)
        {
            throw new CriuCheckpointException(ErrorIds.ConflictingParameters, FailureKind.InvalidArgument,
                $"Only one replica can be restored into the host's PID namespace (its PIDs are the recorded ones), not {options.Count}.", options.Count);
        }

        CheckRegistryRoot(context);
        context.Services.Host.EnsurePrivileges();
        context.Criu = await context.Services.Criu.LocateAsync(options.CriuPath, cancellationToken).ConfigureAwait(false);
        if (options.DirectImageReads && !CriuOptions.SupportsImageIoMode(context.Criu.Version))
        {
            context.Observer.Warning($"criu {context.Criu.Version} at {context.Criu.Path} cannot read images directly (criu {CriuOptions.ImageIoModeVersion} added it); "
                + "it reads them through the page cache.");
        }

        context.Python = context.Services.Python.FindInterpreter(options.PythonPath);
        var versions = await context.Services.Host.RuntimeVersionsAsync(context.Python, context.Observer, cancellationToken).ConfigureAwait(false);
        CheckCompatibility(context, new RuntimeFacts(EnvironmentIdentity.OfProcess(), versions));
        foreach (var index in Enumerable.Range(1, options.Count))
        {
            context.Services.Engines.EnsureNameFree(context.ReplicaName(index));
        }

        context.Validated = context.Services.Clock.GetElapsedTime(started);
        context.Observer.Verbose($"Checkpoint {context.Checkpoint.Path} validated in {context.Validated.TotalSeconds:0.000} s (criu {context.Criu.Version}).");
        return StepOutcome.Continue;
    }

    /// <summary>
    /// A restore creates the recorded run directory's parent on this host and mounts over it: the manifest may name
    /// only a folder of this host's registry, so a hostile one cannot make root create or cover folders elsewhere.
    /// </summary>
    private static void CheckRegistryRoot(RestoreRequest context)
    {
        var recorded = context.Checkpoint.Manifest.RunDirectory;
        var root = Path.GetFullPath(context.Services.Registry.Root);
        if (Path.GetDirectoryName(Path.GetDirectoryName(recorded)) != root)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointInsecure, FailureKind.PermissionDenied,
                $"Refusing to restore {context.Checkpoint.Path}: its run_directory '{recorded}' is not in this host's engine registry ({root}/engines). "
                + "Restore with the CRIUCHECKPOINT_HOME it was saved with.", context.Checkpoint.Path);
        }
    }

    private static void CheckCompatibility(RestoreRequest context, RuntimeFacts runtime)
    {
        var manifest = context.Checkpoint.Manifest;
        // The driver is asked only for checkpoints that hold GPU state: CPU hosts never load it.
        var gpus = manifest.Gpu is null ? null : context.Services.Gpus.Collect(Array.Empty<int>());
        var issues = Compatibility.Check(manifest, context.Services.Host.Facts(context.Criu!.Version.ToString(), context.Python), gpus, runtime);
        if (gpus is not null)
        {
            FindWeightHolder(context, manifest.Gpu!, gpus);
            CheckGpuMemory(context, manifest.Gpu!, gpus);
        }

        if (issues.Count > 0 && !context.Options.Force)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointIncompatible, FailureKind.InvalidOperation,
                $"Checkpoint {context.Checkpoint.Path} does not fit this host: {string.Join("; ", issues)}. Use -Force to restore anyway.", context.Checkpoint.Path);
        }

        foreach (var issue in issues)
        {
            context.Observer.Warning($"Restoring despite a difference (-Force): {issue}.");
        }
    }

    /// <summary>
    /// A -WeightsFromSource checkpoint's replicas map their weights from a ready holder of the same model on the GPU they
    /// land on, when there is one (and -SkipWeightHolder was not given); they read the model's files otherwise.
    /// </summary>
    private static void FindWeightHolder(RestoreRequest context, GpuManifest gpu, GpuSnapshot gpus)
    {
        if (!context.Options.UseWeightHolder || PrefetchWeightsStep.SourceDirectory(context.Checkpoint.Manifest) is not { } model)
        {
            return;
        }

        var targets = Targets(gpu, gpus).Select(t => t.Uuid).ToArray();
        var (holder, reason) = WeightHolderMatch.Find(new WeightHolderRegistry(context.Services.Registry.Root, context.Services.ProcFs).List(), model, targets, WeightHolderMatch.FilesOf(model));
        context.WeightHolder = holder;
        context.Observer.Verbose(holder is null ? $"No weight holder for {model}: {reason}; replicas read the model's files." : $"Replicas map their weights from {reason}.");
    }

    /// <summary>Each GPU the engine held memory on while it served, with the GPU of this host a replica lands on in its place.</summary>
    private static IEnumerable<(int Index, string Uuid)> Targets(GpuManifest gpu, GpuSnapshot gpus)
    {
        var pairs = GpuMap.Pairs(gpu.DeviceUuids, gpus.Devices.OrderBy(d => d.Index).Select(d => d.Uuid).ToList());
        for (var index = 0; index < Math.Min(gpu.DeviceUuids.Count, gpu.ServingBytes.Count); index++)
        {
            if (gpu.ServingBytes[index] > 0)
            {
                yield return (index, pairs.Count == 0 ? gpu.DeviceUuids[index] : pairs[index].NewUuid);
            }
        }
    }

    /// <summary>
    /// Each GPU a replica lands on must have free, once per replica, what the engine held there while it served, less the
    /// weights a holder lends it there; found out later, a full GPU fails the resume after criu and the driver have done
    /// all their work.
    /// </summary>
    private static void CheckGpuMemory(RestoreRequest context, GpuManifest gpu, GpuSnapshot gpus)
    {
        foreach (var (index, target) in Targets(gpu, gpus))
        {
            var lent = context.WeightHolder is { } holder && string.Equals(holder.GpuUuid, target, StringComparison.OrdinalIgnoreCase) ? holder.WeightBytes : 0;
            var needed = Math.Max(0, gpu.ServingBytes[index] - lent) * context.Options.Count;
            if (needed == 0 || gpus.Devices.FirstOrDefault(d => string.Equals(d.Uuid, target, StringComparison.OrdinalIgnoreCase)) is not { } device)
            {
                continue;
            }

            var free = device.MemoryTotalBytes - device.MemoryUsedBytes;
            if (free < needed)
            {
                throw new CriuCheckpointException(ErrorIds.InsufficientGpuMemory, FailureKind.ResourceUnavailable,
                    $"GPU {device.Index} ({device.Uuid}) has {free >> 20} MiB free; {context.Options.Count} replica(s) of {context.Checkpoint.Path} need {needed >> 20} MiB there "
                    + "(what the engine held while it served). Get-GpuProcess shows what holds that GPU.", device.Uuid);
            }
        }
    }
}
