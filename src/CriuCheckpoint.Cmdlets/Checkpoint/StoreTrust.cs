using CriuCheckpoint.Core;
using CriuCheckpoint.Native;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Who may have written a store or a checkpoint, decided on descriptors (docs/security.md). CRIU restores as root
/// whatever the images say, so a checkpoint someone else could alter is a way to run code as root. The rules are
/// OpenSSH's StrictModes: every directory from / down must belong to root or the caller and be writable by nobody else,
/// and the checkpoint and everything in it must be the caller's, plain files and directories only. Each directory is
/// opened relative to its parent with O_NOFOLLOW and inspected through that descriptor, so nothing can be swapped
/// between the check and the use, and the images directory a restore gets is the one that was checked.
/// </summary>
internal static class StoreTrust
{
    private const uint GroupOrOtherWrite = 0b000_010_010;
    private const uint Sticky = 0b001_000_000_000;

    /// <summary>
    /// A directory above a checkpoint. A sticky one (/tmp) may be world-writable: there nobody but an entry's owner
    /// (and the directory's) can rename or remove it, and the next component's owner is checked on its descriptor, so
    /// an entry planted by another user is refused rather than followed.
    /// </summary>
    public static string? ChainProblem(EntryStat stat, uint me) =>
        stat.Uid != 0 && stat.Uid != me ? $"is owned by uid {stat.Uid}, neither root nor the caller (uid {me})"
        : (stat.Mode & GroupOrOtherWrite) != 0 && (stat.Mode & Sticky) == 0 ? $"is writable by group or others (mode {Octal(stat.Mode)})"
        : null;

    /// <summary>The checkpoint directory and every entry in it.</summary>
    public static string? EntryProblem(EntryStat stat, uint me) =>
        stat.IsSymbolicLink ? "is a symbolic link"
        : !stat.IsRegularFile && !stat.IsDirectory ? $"is not a regular file or a directory (mode {Octal(stat.Mode)})"
        : stat.Uid != me ? $"is owned by uid {stat.Uid}, not by the caller (uid {me})"
        : (stat.Mode & GroupOrOtherWrite) != 0 ? $"is writable by group or others (mode {Octal(stat.Mode)})"
        : null;

    /// <summary>Checks every directory from / down to <paramref name="storePath"/>, which must exist, before a save writes there.</summary>
    public static void EnsureStore(string storePath)
    {
        var me = FileOwner.EffectiveUserId;
        Guard("save into", storePath, () => DirectoryChain.OpenPath(storePath, (path, stat) => Require(path, ChainProblem(stat, me))).Dispose());
    }

    /// <summary>
    /// Checks the directories above <paramref name="checkpointPath"/>, the checkpoint and everything in it, and returns it
    /// open: whatever is read from it afterwards is read from the directory checked.
    /// </summary>
    public static TrustedCheckpoint OpenCheckpoint(string checkpointPath, string operation = "restore")
    {
        var me = FileOwner.EffectiveUserId;
        TrustedCheckpoint? trusted = null;
        Guard(operation, checkpointPath, () =>
        {
            using var parent = DirectoryChain.OpenPath(Path.GetDirectoryName(checkpointPath)!, (path, stat) => Require(path, ChainProblem(stat, me)));
            var checkpoint = DirectoryChain.Open(parent, Path.GetFileName(checkpointPath), checkpointPath);
            try
            {
                Require(checkpointPath, EntryProblem(DirectoryChain.Stat(checkpoint), me));
                CheckTree(checkpoint, checkpointPath, me);
                trusted = new TrustedCheckpoint(checkpointPath, checkpoint, DirectoryChain.Open(checkpoint, "images", CheckpointStore.ImagesPath(checkpointPath)));
            }
            catch
            {
                checkpoint.Dispose();
                throw;
            }
        });
        return trusted!;
    }

    private static void CheckTree(SafeFileHandle directory, string directoryPath, uint me)
    {
        foreach (var name in DirectoryChain.Names(directory))
        {
            var path = Path.Combine(directoryPath, name);
            var stat = DirectoryChain.StatEntry(directory, name, path);
            Require(path, EntryProblem(stat, me));
            if (stat.IsDirectory)
            {
                using var child = DirectoryChain.Open(directory, name, path);
                // Re-checked on the descriptor: the entry stat'ed and the directory opened could differ.
                Require(path, EntryProblem(DirectoryChain.Stat(child), me));
                CheckTree(child, path, me);
            }
        }
    }

    private static void Require(string path, string? problem)
    {
        if (problem is not null)
        {
            throw new InsecureEntry($"{path} {problem}");
        }
    }

    /// <summary>Every way the walk fails, a race included (an entry gone, swapped, a symlink), is CheckpointInsecure.</summary>
    private static void Guard(string operation, string target, Action walk)
    {
        try
        {
            walk();
        }
        catch (Exception e) when (e is InsecureEntry or NativeException or IOException or UnauthorizedAccessException)
        {
            throw new CriuCheckpointException(ErrorIds.CheckpointInsecure, FailureKind.PermissionDenied,
                $"Refusing to {operation} {target}: {e.Message}. Every folder from / down must belong to root or you and be writable by nobody else, "
                + "and a checkpoint's files must be yours, with no symbolic link (checkpoints are created 0700, files 0600).", target, e);
        }
    }

    private static string Octal(uint mode) => Convert.ToString(mode & 0xfff, 8);

    private sealed class InsecureEntry(string message) : Exception(message);
}
