namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The command that restores one replica (DESIGN.md §5): a fresh PID and mount namespace whose init is criu itself,
/// a fresh /proc, a private tmpfs over the checkpointed engine's registry folder holding just a mount point for its
/// run directory, and the replica's own run directory bind-mounted there. Nothing of this is visible on the host,
/// and when criu (the namespace's init) exits, everything in the namespace goes with it.
/// </summary>
public static class RestoreCommand
{
    public const string RestoreLog = "restore.log";

    // $1 recorded run dir's parent, $2 recorded run dir, $3 replica dir, $4 criu, $5 images.
    private const string NamespaceScript =
        "set -e; mount -t proc proc /proc; mount -t tmpfs -o mode=0700,size=1m criu-checkpoint \"$1\"; mkdir \"$2\"; "
        + "mount --bind \"$3\" \"$2\"; exec \"$4\" restore -D \"$5\" -W \"$3\" -v4 -o \"$3/" + RestoreLog + "\"";

    public static IReadOnlyList<string> Build(string criu, string images, string recordedRunDirectory, string replicaDirectory) => new[]
    {
        "unshare", "--pid", "--fork", "--mount", "--propagation", "private",
        "sh", "-c", NamespaceScript, "sh",
        Path.GetDirectoryName(recordedRunDirectory)!, recordedRunDirectory, replicaDirectory, criu, images,
    };
}
