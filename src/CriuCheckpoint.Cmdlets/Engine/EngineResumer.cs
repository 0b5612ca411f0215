using System.Diagnostics;
using System.Text.Json;
using CriuCheckpoint.Core;
using CriuCheckpoint.Link;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Engine;

/// <summary>
/// The two halves of the checkpoint handshake with the engine host (docs/protocol.md): prepare it (it drains, releases
/// what must not be saved, closes its sockets and blocks on its resume FIFO) and resume it through that FIFO.
/// </summary>
internal sealed class EngineResumer
{
    private const string GpuOutOfMemoryCode = "gpu_out_of_memory";
    private const string CanaryMismatchCode = "canary_mismatch";

    /// <summary>What an engine gets beyond its drain timeout to release its caches and reach its FIFO.</summary>
    public static readonly TimeSpan ReleaseAllowance = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);
    private readonly ProcFs procFs;

    public EngineResumer(ProcFs? procFs = null) => this.procFs = procFs ?? ProcFs.Host;

    /// <summary>
    /// Asks a serving engine to prepare, then waits until it is blocked on its FIFO (ready.json removed). The whole of it
    /// takes at most the drain timeout and <see cref="ReleaseAllowance"/>. Returns its canary and its tree's inventory.
    /// </summary>
    public async Task<PrepareOutcome> PrepareAsync(EngineRecord record, EngineLink link, PrepareRequest request, CancellationToken cancellationToken)
    {
        var args = new PrepareCheckpointArgs
        {
            DrainTimeoutSeconds = request.DrainTimeout.TotalSeconds, AbortInFlight = request.AbortInFlight, KeepCaches = request.KeepCaches, Canary = request.Canary,
        };
        var deadline = Stopwatch.StartNew();
        var limit = request.DrainTimeout + ReleaseAllowance;
        PrepareCheckpointReply reply;
        try
        {
            reply = await link.CallAsync<PrepareCheckpointArgs, PrepareCheckpointReply>(LinkProtocol.Ops.PrepareCheckpoint, args, limit, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (CriuCheckpointException e) when (e.ErrorId != ErrorIds.EngineDied)
        {
            throw PrepareFailure(record, e, new RunDirectory(record.RunDirectory).LogTail());
        }

        var runDirectory = new RunDirectory(record.RunDirectory);
        while (File.Exists(runDirectory.ReadyFile))
        {
            if (deadline.Elapsed > limit || !procFs.IsAlive(record.RootProcessId, record.RootStartTime))
            {
                throw new CriuCheckpointException(ErrorIds.CheckpointPrepareFailed, FailureKind.InvalidOperation,
                    $"Engine {record.Name} acknowledged prepare_checkpoint but did not reach its resume FIFO within {limit.TotalSeconds:0} s (-DrainTimeout and {ReleaseAllowance.TotalSeconds:0} s to release its caches).",
                    record.Name, details: runDirectory.LogTail());
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }

        return Outcome(reply);
    }

    private static PrepareOutcome Outcome(PrepareCheckpointReply reply) => new(
        reply.Canary is { } canary ? new CheckpointCanary { Prompt = canary.Prompt, TokenIds = canary.TokenIds, Logprobs = canary.Logprobs } : null,
        TimeSpan.FromSeconds(double.IsFinite(reply.CanarySeconds) && reply.CanarySeconds > 0 ? reply.CanarySeconds : 0),
        reply.Inventory is { } inventory ? new EngineRuntime
        {
            Versions = inventory.Versions,
            Environment = new EnvironmentIdentity { Names = inventory.Environment.Names, Sha256 = inventory.Environment.Sha256 },
            Processes = inventory.Processes.Select(p => new RuntimeProcess { ProcessId = p.ProcessId, Role = p.Role, GpuUuids = p.GpuUuids }).ToList(),
            UnixPeersVisible = inventory.UnixPeersVisible,
        } : null);

    /// <summary>
    /// What a refused or failed prepare_checkpoint is to the caller: CheckpointUnsupported when the engine said no
    /// checkpoint of it can be taken as it runs (it released nothing), else CheckpointPrepareFailed. The engine serves on
    /// either way.
    /// </summary>
    internal static CriuCheckpointException PrepareFailure(EngineRecord record, CriuCheckpointException refusal, string? logTail) =>
        refusal.ErrorId == ErrorIds.CheckpointUnsupported
            ? new CriuCheckpointException(ErrorIds.CheckpointUnsupported, FailureKind.NotImplemented,
                $"Engine {record.Name} cannot be checkpointed: {refusal.Message}", record.Name, refusal)
            : new CriuCheckpointException(ErrorIds.CheckpointPrepareFailed, FailureKind.InvalidOperation,
                $"Engine {record.Name} could not prepare for a checkpoint: {refusal.Message}", record.Name, refusal, logTail);

    /// <summary>
    /// Writes the resume message once the engine reads its FIFO, hands it its listening socket, then waits for its new
    /// ready.json. <paramref name="stillAlive"/> tells whether the process that should read the FIFO can still do so.
    /// </summary>
    public async Task<ReadyInfo> ResumeAsync(EngineRecord record, ResumeTerms terms, Func<bool> stillAlive, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var fifo = await OpenFifoAsync(record, stillAlive, timeout, cancellationToken).ConfigureAwait(false);
        return await ResumeThroughAsync(record, fifo, terms, stillAlive, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Waits until the engine reads its resume FIFO: for a restored engine, the moment criu has finished. Fails with
    /// ResumeFailed when the engine exits first or the timeout passes.
    /// </summary>
    public async Task<IResumeFifo> OpenFifoAsync(EngineRecord record, Func<bool> stillAlive, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var runDirectory = new RunDirectory(record.RunDirectory);
        var writer = await Fifo.OpenWhenReadAsync(runDirectory.ResumeFifo, timeout, stillAlive, cancellationToken).ConfigureAwait(false);
        return writer is not null ? new ResumeFifo(writer) : throw new CriuCheckpointException(ErrorIds.ResumeFailed,
            stillAlive() ? FailureKind.OperationTimeout : FailureKind.InvalidOperation,
            stillAlive()
                ? $"Engine {record.Name} did not open its resume FIFO within {timeout.TotalSeconds:0} s."
                : $"Engine {record.Name} exited before it read its resume FIFO.",
            record.Name, details: runDirectory.LogTail());
    }

    /// <summary>
    /// Resumes an engine that reads its FIFO: new link keys, the resume message, its listening socket made here in the
    /// host's network namespace (a replica runs in a network namespace of its own, where nothing it bound itself could
    /// be reached), then its new ready.json, which the engine writes only once its canary matched. Closes the FIFO.
    /// </summary>
    public async Task<ReadyInfo> ResumeThroughAsync(EngineRecord record, IResumeFifo fifo, ResumeTerms terms, Func<bool> stillAlive, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var runDirectory = new RunDirectory(record.RunDirectory);
        var watch = Stopwatch.StartNew();
        using (fifo)
        {
            await HandOverListenerAsync(record, runDirectory, fifo, terms, stillAlive, timeout, cancellationToken).ConfigureAwait(false);
        }

        while (true)
        {
            if (runDirectory.ReadReady() is { } ready)
            {
                return ready;
            }

            if (runDirectory.ReadFailed() is { } failed)
            {
                throw ResumeFailure(record, failed, runDirectory.LogTail());
            }

            if (!stillAlive() || watch.Elapsed > timeout)
            {
                throw new CriuCheckpointException(ErrorIds.ResumeFailed, stillAlive() ? FailureKind.OperationTimeout : FailureKind.InvalidOperation,
                    $"Engine {record.Name} read its resume message but {(stillAlive() ? $"was not serving within {timeout.TotalSeconds:0} s" : "exited")}.",
                    record.Name, details: runDirectory.LogTail());
            }

            await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The engine's own reason; a GPU that is full is named as such, since freeing it is the remedy, and so is a canary
    /// that does not match, since the engine serves wrong answers (a damaged image, other weights, another GPU model).
    /// </summary>
    internal static CriuCheckpointException ResumeFailure(EngineRecord record, FailedInfo failed, string logTail) =>
        failed.Code == CanaryMismatchCode
            ? new CriuCheckpointException(ErrorIds.CanaryMismatch, FailureKind.InvalidData,
                $"Engine {record.Name} does not answer as it did when it was checkpointed, so it was not let serve: {failed.Message}.", record.Name, details: logTail)
        : failed.Code == GpuOutOfMemoryCode
            ? new CriuCheckpointException(ErrorIds.InsufficientGpuMemory, FailureKind.ResourceUnavailable,
                $"Engine {record.Name} could not take back its GPU memory at resume: {failed.Message}. Free GPU memory (Get-GpuProcess shows what holds it), or restore onto another GPU.",
                record.Name, details: logTail)
            : new CriuCheckpointException(ErrorIds.ResumeFailed, FailureKind.InvalidOperation,
                $"Engine {record.Name} failed to resume: {failed.Message} ({failed.Code}).", record.Name, details: logTail);

    /// <summary>
    /// New link keys at every resume (docs/protocol.md, "Security"): a client keypair in the run directory, which the
    /// engine lets in from its next bind on instead of the one before, and the server keypair whose secret key the resume
    /// message carries. A resumed engine so shares no key with its image, the engine it was saved from, or another replica.
    /// </summary>
    private static CurveKeyPair IssueLinkKeys(RunDirectory runDirectory)
    {
        runDirectory.WriteClientKeys(CurveKeyPair.New());
        return CurveKeyPair.New();
    }

    /// <summary>The resume message (docs/protocol.md, "Resume"): one JSON line.</summary>
    internal static string ResumeMessage(int port, string curveSecretKey, ResumeTerms terms)
    {
        var message = new Dictionary<string, object>
        {
            ["host"] = LoopbackListener.Host,
            ["port"] = port,
            ["handover"] = RunDirectory.HandoverSocketName,
            ["curve_secret_key"] = curveSecretKey,
        };
        if (terms.WeightHolder is { } holder)
        {
            message["weight_holder"] = holder;
        }

        if (terms.SkipCanary)
        {
            message["skip_canary"] = true;
        }
        else if (terms.Canary is { } expected)
        {
            message["canary"] = new Dictionary<string, object>
            {
                ["prompt"] = expected.Prompt, ["token_ids"] = expected.TokenIds, ["logprobs"] = expected.Logprobs,
            };
        }

        return JsonSerializer.Serialize(message) + "\n";
    }

    private static async Task HandOverListenerAsync(EngineRecord record, RunDirectory runDirectory, IResumeFifo writer, ResumeTerms terms, Func<bool> stillAlive, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            var server = IssueLinkKeys(runDirectory);
            using var listener = LoopbackListener.Open();
            using var handover = DescriptorHandover.Listen(runDirectory.HandoverSocket);
            writer.Write(ResumeMessage(listener.Port, server.SecretKey, terms));
            if (!await handover.SendAsync(listener.Descriptor, timeout, stillAlive, cancellationToken).ConfigureAwait(false))
            {
                throw new CriuCheckpointException(ErrorIds.ResumeFailed, stillAlive() ? FailureKind.OperationTimeout : FailureKind.InvalidOperation,
                    $"Engine {record.Name} read its resume message but {(stillAlive() ? $"did not take its listening socket within {timeout.TotalSeconds:0} s" : "exited")}.",
                    record.Name, details: runDirectory.LogTail());
            }
        }
        catch (IOException e)
        {
            throw new CriuCheckpointException(ErrorIds.ResumeFailed, FailureKind.InvalidOperation,
                $"Engine {record.Name} could not be given its link keys and listening socket: {e.Message}", record.Name, e, runDirectory.LogTail());
        }
    }
}

/// <summary>The write end of an engine's resume FIFO, open while the engine waits on it.</summary>
internal interface IResumeFifo : IDisposable
{
    void Write(string message);
}

internal sealed class ResumeFifo : IResumeFifo
{
    private readonly Fifo.FifoWriter writer;

    public ResumeFifo(Fifo.FifoWriter writer) => this.writer = writer;

    public void Write(string message) => writer.Write(message);

    public void Dispose() => writer.Dispose();
}
