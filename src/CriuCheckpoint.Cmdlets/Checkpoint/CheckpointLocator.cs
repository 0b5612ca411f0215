using CriuCheckpoint.Core;

namespace CriuCheckpoint.Checkpoint;

/// <summary>Resolves what a user names with -Path: a checkpoint directory, or a store holding exactly one.</summary>
internal static class CheckpointLocator
{
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
