using CriuCheckpoint.Native;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// A checkpoint that passed StoreTrust's checks, held open: everything read from it afterwards (the manifest, the log
/// snapshot, the images, criu's -D) goes through these descriptors, so the files used are those of the directory checked
/// whatever its path names by then.
/// </summary>
internal sealed class TrustedCheckpoint : IDisposable
{
    public TrustedCheckpoint(string path, SafeFileHandle directory, SafeFileHandle images)
    {
        Path = path;
        Directory = directory;
        Images = images;
    }

    /// <summary>The path it was opened by, for messages and records.</summary>
    public string Path { get; }

    public SafeFileHandle Directory { get; }

    /// <summary>The images directory, handed to criu as an inherited descriptor.</summary>
    public SafeFileHandle Images { get; }

    /// <summary>A path through the open descriptor (/proc/self/fd/N) to read the checkpoint's files by.</summary>
    public string ReadPath => DirectoryChain.DescriptorPath(Directory);

    public void Dispose()
    {
        Images.Dispose();
        Directory.Dispose();
    }
}
