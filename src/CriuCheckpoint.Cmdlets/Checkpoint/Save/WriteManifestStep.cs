using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The manifest and the engine log as it was at the dump. CRIU restores an open regular file only at the size it had
/// when it was dumped, so the log is copied up to that size, and hashed as it is copied (it is small: no other pass).
/// </summary>
internal sealed class WriteManifestStep : IStep<SaveContext>
{
    public string Name => "WriteManifest";

    public int PercentAtStart => 80;

    public string Describe(SaveContext context) => "Writing the manifest and the log snapshot";

    public Task<StepOutcome> RunAsync(SaveContext context, RollbackStack rollback, CancellationToken cancellationToken)
    {
        var started = context.Services.Clock.GetTimestamp();
        var staging = context.Staging!;
        var runDirectory = new RunDirectory(context.Record.RunDirectory);
        // Read after the dump, when nothing writes to the log any more (the tree is dead, or blocked on its FIFO until
        // it is resumed): a last line logged on the way to the FIFO would otherwise make every restore fail ("bad size").
        var logSize = new FileInfo(runDirectory.LogFile).Length;
        var logHash = CopyPrefix(runDirectory.LogFile, CheckpointStore.LogSnapshotPath(staging), logSize);
        var manifest = Build(context, logSize, logHash);
        RunDirectory.WriteJsonAtomic(CheckpointStore.ManifestPath(staging), manifest);
        context.Timings.Add("manifest", context.Services.Clock.GetElapsedTime(started));
        return Task.FromResult(StepOutcome.Continue);
    }

    private static CheckpointManifest Build(SaveContext context, long logSize, string logHash)
    {
        var engine = context.Engine;
        return new CheckpointManifest
        {
            ConfigHash = engine.ConfigHash,
            CreatedAt = context.Services.Clock.GetUtcNow(),
            EngineId = engine.Id,
            EngineName = engine.Name,
            Spec = engine.Record.Spec,
            NativeConfigHash = engine.NativeConfigHash,
            RunDirectory = engine.RunDirectory,
            LogSizeAtDump = logSize,
            LogHash = logHash,
            LogMode = (int)File.GetUnixFileMode(new RunDirectory(context.Record.RunDirectory).LogFile),
            ProcessTree = context.Tree.Processes.ToList(),
            Host = context.Services.Host.Facts(context.Criu!.Version.ToString(), engine.Record.Python),
            MappedFiles = context.MappedFiles,
            Images = context.Images,
            ImageBytes = context.Images.Sum(f => f.Size),
            EstimatedImageBytes = context.EstimatedImageBytes,
            Gpu = context.Gpu,
            GpuBytes = context.Gpu?.BytesCheckpointed ?? 0,
            CachesKept = context.Options.KeepCaches,
            Canary = context.Canary,
            Runtime = context.Runtime,
            Timings = context.Timings.Phases.ToDictionary(p => p.Key, p => p.Value.TotalSeconds),
        };
    }

    /// <summary>Copies the first <paramref name="length"/> bytes, the log as it was at the dump, and returns their hash.</summary>
    private static string CopyPrefix(string source, string destination, long length)
    {
        using var input = File.OpenRead(source);
        using var output = CheckpointStore.CreatePrivateFile(destination);
        var hasher = new PiecewiseHash();
        var buffer = new byte[81920];
        var remaining = length;
        while (remaining > 0)
        {
            var read = input.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
            if (read == 0)
            {
                throw new IOException($"{source} is shorter than the {length} bytes it had at dump.");
            }

            output.Write(buffer, 0, read);
            hasher.Append(buffer.AsSpan(0, read));
            remaining -= read;
        }

        return hasher.ToHex();
    }
}
