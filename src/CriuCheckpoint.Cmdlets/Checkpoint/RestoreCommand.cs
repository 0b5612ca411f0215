using CriuCheckpoint.Engine;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The command that restores one replica (DESIGN.md §5): a fresh PID and mount namespace whose init is criu itself,
/// a fresh /proc, a private tmpfs over the checkpointed engine's registry folder holding just a mount point for its
/// run directory, and the replica's own run directory bind-mounted there. Nothing of this is visible on the host,
/// and when criu (the namespace's init) exits, everything in the namespace goes with it.
/// A fresh network namespace too: the CUDA runtime binds an abstract unix socket named after the process's PID, which a
/// restore keeps, and abstract sockets are per network namespace, so only this lets several copies of one CUDA process
/// run at once. The engine's listening socket comes from the host's namespace at resume (EngineResumer).
/// </summary>
internal static class RestoreCommand
{
    public const string RestoreLog = "restore.log";

    // $1 recorded run dir's parent, $2 recorded run dir, $3 replica dir, $4 criu, $5 images, $6 python, $7 its lo script.
    // lo comes up first: criu probes TCP repair over it before it restores anything.
    private const string NamespaceScript =
        "set -e; \"$6\" -I -S \"$7\"; mount -t proc proc /proc; mount -t tmpfs -o mode=0700,size=1m criu-checkpoint \"$1\"; mkdir \"$2\"; "
        + "mount --bind \"$3\" \"$2\"; exec \"$4\" restore -D \"$5\" -W \"$3\" -v4 -o \"$3/" + RestoreLog + "\"";

    /// <summary>
    /// With <paramref name="hostPidNamespace"/> the tree comes back in this host's PID namespace with its recorded
    /// PIDs (the first prototype's way: once the original has exited, and once at a time); criu is then not an init.
    /// </summary>
    public static IReadOnlyList<string> Build(string criu, string images, string recordedRunDirectory, string replicaDirectory, string python, bool hostPidNamespace) =>
        (hostPidNamespace ? new[] { "unshare" } : new[] { "unshare", "--pid", "--fork" }).Concat(new[]
        {
            "--mount", "--net", "--propagation", "private",
            "sh", "-c", NamespaceScript, "sh",
            Path.GetDirectoryName(recordedRunDirectory)!, recordedRunDirectory, replicaDirectory, criu, images,
            python, LoopbackScript,
        }).ToArray();

    private static string LoopbackScript => Path.Combine(EngineHostFiles.Directory, "engine_host", "tools", "loopback_up.py");
}
