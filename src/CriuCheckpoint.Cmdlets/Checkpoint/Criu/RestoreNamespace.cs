using CriuCheckpoint.Engine;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Where a replica's criu restore runs, criu started through a helper that receives the checked images directory's
/// descriptor and execs criu reading through it: a fresh PID and mount namespace whose init is criu itself, a fresh /proc, a
/// private tmpfs over the checkpointed engine's registry folder holding just a mount point for its run directory, and
/// the replica's own run directory bind-mounted there. Nothing of this is visible on the host, and when criu (the
/// namespace's init) exits, everything in the namespace goes with it.
/// A fresh network namespace too: the CUDA runtime binds an abstract unix socket named after the process's PID, which
/// a restore keeps, and abstract sockets are per network namespace, so only this lets several copies of one CUDA
/// process run at once. The engine's listening socket comes from the host's namespace at resume (EngineResumer).
/// </summary>
internal sealed record RestoreNamespace
{
    // $1 python, $2 its loopback script, $3 recorded run dir's parent, $4 recorded run dir, $5 replica dir; then the
    // command. lo comes up first: criu probes TCP repair over it before it restores anything.
    private const string Script =
        "set -e; \"$1\" -I -S \"$2\"; mount -t proc proc /proc; mount -t tmpfs -o mode=0700,size=1m criu-checkpoint \"$3\"; "
        + "mkdir \"$4\"; mount --bind \"$5\" \"$4\"; shift 5; exec \"$@\"";

    /// <summary>The run directory the checkpointed engine had: the path its open files name.</summary>
    public required string RecordedRunDirectory { get; init; }

    public required string ReplicaDirectory { get; init; }

    /// <summary>The interpreter that brings the namespace's loopback interface up.</summary>
    public required string Python { get; init; }

    /// <summary>
    /// Restore with the recorded PIDs in this host's PID namespace: one replica, and only once the original and every
    /// other copy have exited (criu fails when a PID is taken); criu is then not an init.
    /// </summary>
    public bool HostPidNamespace { get; init; }

    /// <summary>Stands for the images directory in criu's arguments; the helper puts the received descriptor there.</summary>
    public const string ImagesArgument = "@images";

    /// <summary>The socket the images directory's descriptor is handed over, in the replica's 0700 run directory.</summary>
    public const string ImagesSocketName = "images.sock";

    /// <summary>The checkpoint's images directory, checked and open: what criu reads (docs/security.md).</summary>
    public SafeFileHandle? Images { get; init; }

    public static string ImagesScript => Path.Combine(EngineHostFiles.Directory, "engine_host", "tools", "images_fd.py");

    public static string LoopbackScript => Path.Combine(EngineHostFiles.Directory, "engine_host", "tools", "loopback_up.py");

    /// <summary>The whole command: the namespaces, the mount plan, then <paramref name="command"/> exec'd in place.</summary>
    public IReadOnlyList<string> Wrap(IReadOnlyList<string> command)
    {
        var arguments = new List<string> { "unshare" };
        if (!HostPidNamespace)
        {
            // unshare is the PID a user sees and kills: when it dies, its child (criu, the namespace's init) is killed
            // too, and with the init the kernel ends every process of the namespace.
            arguments.AddRange(new[] { "--pid", "--fork", "--kill-child=SIGKILL" });
        }

        arguments.AddRange(new[] { "--mount", "--net", "--propagation", "private", "sh", "-c", Script, "sh" });
        arguments.AddRange(new[] { Python, LoopbackScript, Path.GetDirectoryName(RecordedRunDirectory)!, RecordedRunDirectory, ReplicaDirectory });
        // Inside the namespace the replica's directory is seen at the recorded path (the tmpfs hides its own).
        arguments.AddRange(new[] { Python, "-I", "-S", ImagesScript, Path.Combine(RecordedRunDirectory, ImagesSocketName) });
        arguments.AddRange(command);
        return arguments;
    }
}
