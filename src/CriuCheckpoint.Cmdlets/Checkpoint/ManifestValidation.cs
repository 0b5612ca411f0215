using CriuCheckpoint.Core;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// A manifest is data from a file anyone may have handed over, not instructions: every field a restore acts on must
/// have the shape this module writes, checked when the checkpoint is opened, before anything touches the host.
/// Fields are named as in manifest.json.
/// </summary>
internal static class ManifestValidation
{
    private const int MaxFileName = 255;
    private const int MaxCanaryPrompt = 1000;

    public static void Validate(CheckpointManifest manifest, string checkpointPath)
    {
        if (manifest.SchemaVersion != CheckpointManifest.CurrentSchemaVersion)
        {
            // Not damage: a manifest of another schema means other fields, which this module cannot read safely.
            throw new CriuCheckpointException(ErrorIds.CheckpointIncompatible, FailureKind.InvalidData,
                $"Checkpoint {checkpointPath} has manifest schema_version {manifest.SchemaVersion}; this module reads schema {CheckpointManifest.CurrentSchemaVersion}. Save the engine again (Save-EngineCheckpoint -Force replaces it), or remove it.",
                checkpointPath);
        }

        if ((Identity(manifest) ?? Files(manifest) ?? Processes(manifest) ?? Gpu(manifest) ?? Canary(manifest.Canary) ?? Runtime(manifest.Runtime)) is { } problem)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointCorrupt, FailureKind.InvalidData,
                $"The manifest of checkpoint {checkpointPath} is not valid: {problem}.", checkpointPath);
        }
    }

    /// <summary>
    /// The recorded run directory, which a restore creates the parent of and mounts over: exactly what
    /// EngineRegistry makes, &lt;registry root&gt;/engines/&lt;engine id&gt;, absolute and normalized.
    /// </summary>
    public static string? RunDirectoryProblem(string? runDirectory, string engineId)
    {
        if (string.IsNullOrEmpty(runDirectory) || !runDirectory.StartsWith('/') || runDirectory.Any(char.IsControl))
        {
            return $"run_directory '{runDirectory}' is not an absolute path";
        }

        if (runDirectory.EndsWith('/') || runDirectory.Split('/').Skip(1).Any(part => part is "" or "." or "..")
            || Path.GetFullPath(runDirectory) != runDirectory)
        {
            return $"run_directory '{runDirectory}' is not a normalized path";
        }

        var parent = Path.GetDirectoryName(runDirectory)!;
        if (!IsEngineId(Path.GetFileName(runDirectory)) || Path.GetFileName(parent) != "engines" || Path.GetDirectoryName(parent) == "/")
        {
            return $"run_directory '{runDirectory}' is not <registry root>/engines/<12 hex digits>";
        }

        return Path.GetFileName(runDirectory) == engineId ? null : $"run_directory '{runDirectory}' is not the folder of engine_id '{engineId}'";
    }

    /// <summary>A name for a file directly inside images/: no folder, no way out of it.</summary>
    public static bool IsPlainFileName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxFileName && name is not ("." or "..")
        && !name.Contains('/') && !name.Any(char.IsControl);

    private static bool IsEngineId(string? id) => id is { Length: 12 } && id.All(char.IsAsciiHexDigitLower);

    private static string? Identity(CheckpointManifest manifest)
    {
        if (manifest.ConfigHash is not { Length: 16 } hash || !hash.All(char.IsAsciiHexDigitLower))
        {
            return $"config_hash '{manifest.ConfigHash}' is not 16 lowercase hex digits";
        }

        if (!IsEngineId(manifest.EngineId))
        {
            return $"engine_id '{manifest.EngineId}' is not 12 lowercase hex digits";
        }

        if (manifest.Spec is null || manifest.Host is null || manifest.Timings is null)
        {
            return $"{(manifest.Spec is null ? "spec" : manifest.Host is null ? "host" : "timings")} is missing";
        }

        if (manifest.Timings.FirstOrDefault(t => !double.IsFinite(t.Value) || t.Value < 0) is { Key: not null } timing)
        {
            return $"timings.{timing.Key} is {timing.Value}, not a duration";
        }

        return RunDirectoryProblem(manifest.RunDirectory, manifest.EngineId);
    }

    private static string? Files(CheckpointManifest manifest)
    {
        if (manifest.Images is not { Count: > 0 } images)
        {
            return "images lists no file";
        }

        for (var index = 0; index < images.Count; index++)
        {
            var image = images[index];
            var problem = image is null ? "is missing"
                : !IsPlainFileName(image.Path) ? $".path '{image.Path}' is not a plain file name"
                : image.Size < 0 ? $".size is {image.Size}"
                : !FileHash.IsHash(image.Hash) ? $".hash '{image.Hash}' is not {FileHash.HexLength} lowercase hex digits"
                : images.Take(index).Any(i => i.Path == image.Path) ? $".path '{image.Path}' is listed twice"
                : null;
            if (problem is not null)
            {
                return $"images[{index}]{problem}";
            }
        }

        return manifest.ImageBytes != images.Sum(i => i.Size) ? $"image_bytes {manifest.ImageBytes} is not the sum of the images' sizes"
            : manifest.LogSizeAtDump < 0 ? $"log_size_at_dump is {manifest.LogSizeAtDump}"
            : manifest.LogMode is < 0 or > 0b111_111_111 ? $"log_mode {Convert.ToString(manifest.LogMode, 8)} is not permission bits"
            : !FileHash.IsHash(manifest.LogHash) ? $"log_hash '{manifest.LogHash}' is not {FileHash.HexLength} lowercase hex digits"
            : manifest.EstimatedImageBytes < 0 ? $"estimated_image_bytes is {manifest.EstimatedImageBytes}"
            : manifest.MappedFiles is null ? "mapped_files is missing"
            : manifest.MappedFiles.FirstOrDefault(f => f is null || !f.Path.StartsWith('/') || f.Size < 0) is { } mapped ? $"mapped_files entry '{mapped.Path}' ({mapped.Size} bytes) is not an absolute path with a size"
            : null;
    }

    private static string? Processes(CheckpointManifest manifest)
    {
        if (manifest.ProcessTree is not { Count: > 0 } tree)
        {
            return "process_tree lists no process";
        }

        for (var index = 0; index < tree.Count; index++)
        {
            var process = tree[index];
            if (process is null || process.ProcessId <= 0 || process.NamespaceProcessId <= 0 || process.ParentProcessId < 0)
            {
                return $"process_tree[{index}] has PIDs {process?.ProcessId}, {process?.NamespaceProcessId} (namespace) and parent {process?.ParentProcessId}; PIDs are positive";
            }
        }

        return null;
    }

    /// <summary>
    /// The canary a resume message carries to the engine: a prompt, 1 to <see cref="CheckpointCanary.MaxTokens"/> token ids
    /// and one finite logprob (a log-probability: not above 0) each.
    /// </summary>
    internal static string? Canary(CheckpointCanary? canary)
    {
        if (canary is null)
        {
            return null;
        }

        return string.IsNullOrEmpty(canary.Prompt) || canary.Prompt.Length > MaxCanaryPrompt ? $"canary.prompt is empty or longer than {MaxCanaryPrompt} characters"
            : canary.TokenIds is not { Count: >= 1 and <= CheckpointCanary.MaxTokens } ids ? $"canary.token_ids holds {canary.TokenIds?.Count ?? 0} token ids, not 1 to {CheckpointCanary.MaxTokens}"
            : ids.Any(id => id < 0) ? "canary.token_ids holds a negative token id"
            : canary.Logprobs is null || canary.Logprobs.Count != ids.Count ? "canary.logprobs does not hold one logprob per token id"
            : canary.Logprobs.Where(p => !double.IsFinite(p) || p > 0).Select(p => (double?)p).FirstOrDefault() is { } bad ? $"canary.logprobs holds {bad}, not a log-probability"
            : null;
    }

    private static string? Runtime(EngineRuntime? runtime)
    {
        if (runtime is null)
        {
            return null;
        }

        return runtime.Versions is null || runtime.Versions.Any(v => string.IsNullOrEmpty(v.Key) || v.Value is null) ? "runtime.versions holds a package without a version"
            : runtime.Environment is not { Names: not null } environment || !IsSha256(environment.Sha256) ? "runtime.environment is not a list of names and a SHA-256 of 64 lowercase hex digits"
            : runtime.Processes is null || runtime.Processes.Any(p => p is null || p.ProcessId <= 0 || p.GpuUuids is null) ? "runtime.processes holds a process without a positive PID and its GPU list"
            : null;
    }

    private static bool IsSha256(string? hash) => hash is { Length: 64 } && hash.All(char.IsAsciiHexDigitLower);

    private static string? Gpu(CheckpointManifest manifest)
    {
        if (manifest.GpuBytes < 0)
        {
            return $"gpu_bytes is {manifest.GpuBytes}";
        }

        if (manifest.Gpu is not { } gpu)
        {
            return null;
        }

        return gpu.ProcessIds is null || gpu.ProcessIds.Any(pid => pid <= 0) ? "gpu.process_ids holds a PID that is not positive"
            : gpu.DeviceUuids is null || gpu.DeviceNames is null || gpu.DeviceNames.Count != gpu.DeviceUuids.Count ? "gpu.device_names does not match gpu.device_uuids"
            : gpu.ServingBytes is null || gpu.ServingBytes.Any(b => b < 0) ? "gpu.serving_bytes holds a negative size"
            : gpu.BytesCheckpointed < 0 ? $"gpu.bytes_checkpointed is {gpu.BytesCheckpointed}"
            : null;
    }
}
