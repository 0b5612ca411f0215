using System.Diagnostics;
using System.Globalization;
using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>
/// Starts a weight holder detached in its own session, as engines are, and waits until it holds the model's weights
/// (its ready.json) or fails (failed.json, exit, deadline, Ctrl+C); on every way out but success, what it started is
/// killed by PID and its run directory removed.
/// </summary>
internal sealed class WeightHolderLauncher
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private readonly WeightHolderRegistry registry;
    private readonly IOperationObserver observer;
    private readonly ProcFs procFs;

    public WeightHolderLauncher(WeightHolderRegistry registry, IOperationObserver? observer = null, ProcFs? procFs = null)
    {
        this.registry = registry;
        this.observer = observer ?? NullObserver.Instance;
        this.procFs = procFs ?? ProcFs.Host;
    }

    public async Task<WeightHolder> StartAsync(string model, int gpuIndex, string python, string? name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        EnsureNameFree(name);
        var record = registry.Create(model, gpuIndex, python, name);
        var runDirectory = new HolderRunDirectory(record.RunDirectory);
        var activity = $"Starting weight holder {record.Name}";
        var succeeded = false;
        try
        {
            observer.Progress(activity, $"Launching it on GPU {gpuIndex}", 0);
            var command = CommandLine(record);
            observer.Debug(Core.CommandLine.Format(command));
            record.RootProcessId = await SessionProcess.StartAsync(command, runDirectory.PidFile, runDirectory.LogFile, record.RunDirectory, Environment(), cancellationToken)
                .ConfigureAwait(false);
            record.RootStartTime = procFs.ReadStat(record.RootProcessId)?.StartTime ?? 0;
            registry.Save(record);
            observer.Progress(activity, $"Reading {model} into GPU {gpuIndex}", 10);
            await WaitForReadyAsync(record, runDirectory, timeout, cancellationToken).ConfigureAwait(false);
            var holder = registry.Describe(record);
            observer.Verbose($"Weight holder {record.Name}: {holder.WeightBytes / 1e9:0.00} GB of {model} on GPU {gpuIndex} in {watch.Elapsed.TotalSeconds:0.000} s (its read: {holder.LoadSeconds:0.000} s).");
            succeeded = true;
            return holder;
        }
        catch (NativeException e)
        {
            throw new CriuCheckpointException(ErrorIds.WeightHolderFailed, FailureKind.InvalidOperation, e.Message, record.Name, e, e.Details);
        }
        finally
        {
            if (!succeeded)
            {
                Abandon(record);
            }
        }
    }

    /// <summary>The holder's command line (docs/protocol.md, "Weight holder"). Pure.</summary>
    public static IReadOnlyList<string> CommandLine(WeightHolderRecord record) => new[]
    {
        record.Python, "-m", "engine_host.weight_holder",
        "--model", record.Model,
        "--device", record.GpuIndex.ToString(CultureInfo.InvariantCulture),
        "--run-dir", record.RunDirectory,
    };

    /// <summary>
    /// The engine host's environment, with CUDA numbering the GPUs in PCI bus order as NVML and nvidia-smi do, so that
    /// -Gpu N (nvidia-smi's index) is the holder's CUDA device N; CUDA's own default puts the fastest first.
    /// </summary>
    internal static Dictionary<string, string?> Environment()
    {
        var environment = EngineHostEnvironment.Create();
        environment["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
        return environment;
    }

    private void EnsureNameFree(string? name)
    {
        if (!string.IsNullOrEmpty(name) && registry.List().Any(h => h.State != WeightHolderState.Exited && string.Equals(h.Name, name, StringComparison.Ordinal)))
        {
            throw new CriuCheckpointException(ErrorIds.WeightHolderNameInUse, FailureKind.ResourceExists,
                $"A weight holder named '{name}' is running. Stop it (Stop-WeightHolder -Name {name}) or choose another name.", name);
        }
    }

    private async Task WaitForReadyAsync(WeightHolderRecord record, HolderRunDirectory runDirectory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (runDirectory.ReadReady() is null)
        {
            if (runDirectory.ReadFailed() is { } failed)
            {
                var (errorId, kind) = failed.Code switch
                {
                    "model_not_found" => (ErrorIds.ModelNotFound, FailureKind.ObjectNotFound),
                    "gpu_out_of_memory" => (ErrorIds.InsufficientGpuMemory, FailureKind.ResourceUnavailable),
                    "missing_dependency" => (ErrorIds.PythonPackageMissing, FailureKind.NotInstalled),
                    "backend_unavailable" => (ErrorIds.WeightHolderFailed, FailureKind.NotInstalled),
                    _ => (ErrorIds.WeightHolderFailed, FailureKind.InvalidOperation),
                };
                throw new CriuCheckpointException(errorId, kind, $"Weight holder {record.Name} failed: {failed.Message} ({failed.Code}).", record.Name, details: runDirectory.LogTail());
            }

            if (!procFs.IsAlive(record.RootProcessId, record.RootStartTime))
            {
                throw new CriuCheckpointException(ErrorIds.WeightHolderFailed, FailureKind.InvalidOperation,
                    $"Weight holder {record.Name} (PID {record.RootProcessId}) exited while loading. The end of its log ({runDirectory.LogFile}) is below.", record.Name, details: runDirectory.LogTail());
            }

            if (waited.Elapsed > timeout)
            {
                throw new CriuCheckpointException(ErrorIds.WeightHolderTimeout, FailureKind.OperationTimeout,
                    $"Weight holder {record.Name} did not hold {record.Model} within {timeout.TotalSeconds:0.#} s (-TimeoutSec). It was stopped.", record.Name, details: runDirectory.LogTail());
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Kills what a failed start left running (by PID) and removes its run directory.</summary>
    public void Abandon(WeightHolderRecord record)
    {
        new ProcessTerminator(procFs).KillLaunchedSession(record.RootProcessId, record.RootStartTime, new HolderRunDirectory(record.RunDirectory).PidFile);
        registry.Remove(record);
    }
}
