using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Resolves what a user names with -Path: a checkpoint directory, or a store.</summary>
internal static class CheckpointLocator
{
    /// <summary>The checkpoint directory itself, or every published checkpoint of a store; none when the path is neither.</summary>
    public static IReadOnlyList<string> Directories(string path) =>
        File.Exists(CheckpointStore.ManifestPath(path)) ? new[] { path }
        : Directory.Exists(path) ? new CheckpointStore(path).CheckpointDirectories().ToArray()
        : Array.Empty<string>();

    /// <summary>The checkpoint directory itself, or the one checkpoint of a store; fails for none or several.</summary>
    public static EngineCheckpoint Open(string path, IReadOnlyList<CompatibilityIssue>? issues = null)
    {
        if (File.Exists(CheckpointStore.ManifestPath(path)))
        {
            return CheckpointStore.Open(path, issues);
        }

        if (!Directory.Exists(path))
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.ObjectNotFound, $"No checkpoint or store at {path}.", path);
        }

        var all = new CheckpointStore(path).List();
        return all.Count switch
        {
            1 => all[0],
            0 => throw new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.ObjectNotFound, $"{path} holds no checkpoint.", path),
            _ => throw new CriuCheckpointException(ErrorIds.CheckpointNotFound, FailureKind.InvalidArgument,
                $"The store {path} holds {all.Count} checkpoints ({string.Join(", ", all.Select(c => c.ConfigHash))}); name one: -Path {System.IO.Path.Combine(path, all[0].ConfigHash)}, or pipe Get-EngineCheckpoint.", path),
        };
    }
}
