using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Tests;

/// <summary>What tests do to a saved checkpoint's files: what a bad copy, a flipped bit or a hand-edited manifest does.</summary>
internal static class CheckpointTestFiles
{
    /// <summary>Changes manifest.json on disk, the only manifest a restore, a test or an export believes.</summary>
    public static void RewriteManifest(EngineCheckpoint checkpoint, Action<CheckpointManifest> change)
    {
        var path = CheckpointStore.ManifestPath(checkpoint.Path);
        var manifest = RunDirectory.ReadJson<CheckpointManifest>(path)!;
        change(manifest);
        RunDirectory.WriteJsonAtomic(path, manifest);
    }

    /// <summary>Inverts one byte in the middle of a file: same size, other bytes.</summary>
    public static void FlipByte(string path)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0xff;
        File.WriteAllBytes(path, bytes);
    }
}
