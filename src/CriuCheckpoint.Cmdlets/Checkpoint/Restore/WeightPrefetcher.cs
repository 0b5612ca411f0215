using CriuCheckpoint.Native;
using Microsoft.Win32.SafeHandles;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// What a weight prefetch read and how fast, what it found in the page cache already, and why each entry it would not
/// read was refused.
/// </summary>
internal sealed record WeightPrefetchResult(string Directory, int Files, long Bytes, long CachedBytes, long FileBytes, TimeSpan Elapsed, IReadOnlyList<string> Refused)
{
    /// <summary>Every byte of every file is in the page cache: the prefetch was not stopped first, and no file shrank meanwhile.</summary>
    public bool Complete => Bytes + CachedBytes == FileBytes;

    /// <summary>The rate of what it read; what was cached already took no reading.</summary>
    public double BytesPerSecond => Elapsed > TimeSpan.Zero ? Bytes / Elapsed.TotalSeconds : 0;
}

/// <summary>Reads a model directory's weight files into the page cache, so that an engine's own read of them is a copy from memory.</summary>
internal interface IWeightPrefetcher
{
    /// <summary>
    /// Reads every *.safetensors regular file directly in <paramref name="directory"/> once. The token stops it between
    /// reads, and what was read until then is returned. A directory or a file that cannot be opened is a
    /// NativeException, a file that cannot be read an IOException.
    /// </summary>
    Task<WeightPrefetchResult> ReadAsync(string directory, CancellationToken cancellationToken);
}

/// <summary>
/// Opens the weight files by descriptor (the directory comes from a manifest, untrusted): only regular files, no
/// symlink followed, nothing that could block an open, each checked with fstat on the descriptor it is read through.
/// Then several threads read them in chunks, each chunk through an open file description of its own and front to
/// back, so the kernel sees one sequential stream per reader and reads ahead for each: measured on ext4, one
/// description shared by every reader, or posix_fadvise(WILLNEED) alone, read about half as fast from the same
/// disk (docs/performance.md, "Weights read beside the restore"). A chunk the page cache holds whole when the prefetch
/// starts is not read again (cachestat, Linux 6.5): on a warm node it costs a system call per chunk, not a copy of the
/// model; a kernel without cachestat reads it again, at memory speed.
/// </summary>
internal sealed class WeightPrefetcher : IWeightPrefetcher
{
    public const string Extension = ".safetensors";

    /// <summary>As many readers as the torch engine's weight loader uses: enough requests in flight for an NVMe disk.</summary>
    public const int DefaultThreads = 8;

    public const long DefaultChunkBytes = 64L << 20;

    /// <summary>One read's size: a buffer this small stays in the CPU's cache, so reading cached pages costs one copy.</summary>
    public const int DefaultReadBytes = 1 << 20;

    private readonly int threads;
    private readonly long chunkBytes;
    private readonly int readBytes;
    private readonly TimeProvider clock;

    public WeightPrefetcher(int threads = DefaultThreads, long chunkBytes = DefaultChunkBytes, int readBytes = DefaultReadBytes, TimeProvider? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(readBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, readBytes);
        this.threads = threads;
        this.chunkBytes = chunkBytes;
        this.readBytes = readBytes;
        this.clock = clock ?? TimeProvider.System;
    }

    public async Task<WeightPrefetchResult> ReadAsync(string directory, CancellationToken cancellationToken)
    {
        var started = clock.GetTimestamp();
        using var files = WeightFiles.Open(directory);
        var chunks = files.Chunks(chunkBytes);
        var uncached = chunks.Where(c => !c.IsCached).ToArray();
        var reader = new ChunkReader(uncached, readBytes, cancellationToken);
        var workers = Enumerable.Range(0, Math.Min(threads, reader.ChunkCount))
            .Select(_ => Task.Factory.StartNew(reader.Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
        await Task.WhenAll(workers).ConfigureAwait(false);
        var cached = chunks.Sum(c => c.Length) - uncached.Sum(c => c.Length);
        return new WeightPrefetchResult(directory, files.Count, reader.Bytes, cached, files.Bytes, clock.GetElapsedTime(started), files.Refused);
    }

    private sealed record WeightFile(string Path, SafeFileHandle Handle, long Length);

    private sealed record Chunk(WeightFile File, long Offset, long End)
    {
        public long Length => End - Offset;

        /// <summary>The page cache holds all of it (asked before any reader starts, whose readahead would blur it).</summary>
        public bool IsCached => ReadOnlyFile.CachedBytes(File.Handle, Offset, Length) >= Length;
    }

    /// <summary>The weight files of one directory, open and checked, and why the other candidates were not opened.</summary>
    private sealed class WeightFiles : IDisposable
    {
        private readonly List<WeightFile> files = new();
        private readonly List<string> refused = new();

        public int Count => files.Count;

        public long Bytes => files.Sum(f => f.Length);

        public IReadOnlyList<string> Refused => refused;

        public static WeightFiles Open(string directory)
        {
            using var handle = ReadOnlyFile.OpenDirectory(directory);
            var opened = new WeightFiles();
            try
            {
                foreach (var name in DirectoryChain.Names(handle).Where(IsWeightFile).Order(StringComparer.Ordinal))
                {
                    opened.Add(handle, name, Path.Combine(directory, name));
                }

                return opened;
            }
            catch
            {
                opened.Dispose();
                throw;
            }
        }

        /// <summary>What *.safetensors matches in a shell or in Python's glob (the engine's): no hidden file.</summary>
        private static bool IsWeightFile(string name) => name.EndsWith(Extension, StringComparison.Ordinal) && !name.StartsWith('.');

        public IReadOnlyList<Chunk> Chunks(long size) =>
            files.SelectMany(f => Enumerable.Range(0, (int)((f.Length + size - 1) / size))
                .Select(i => new Chunk(f, i * size, Math.Min(f.Length, (i + 1) * size))))
                .ToArray();

        /// <summary>
        /// The entry is looked at before it is opened, so a device or a FIFO is never opened at all, and again on the
        /// descriptor, which is what is read: an entry swapped between the two is refused too.
        /// </summary>
        private void Add(SafeFileHandle directory, string name, string path)
        {
            try
            {
                if (Refusal(DirectoryChain.StatEntry(directory, name, path)) is { } before)
                {
                    refused.Add($"{path}: {before}");
                    return;
                }

                var file = ReadOnlyFile.OpenEntry(directory, name, path);
                if (Refusal(DirectoryChain.Stat(file)) is { } after)
                {
                    file.Dispose();
                    refused.Add($"{path}: {after}");
                    return;
                }

                files.Add(new WeightFile(path, file, RandomAccess.GetLength(file)));
            }
            catch (NativeException e)
            {
                refused.Add(e.Message);
            }
        }

        private static string? Refusal(EntryStat stat) =>
            stat.IsRegularFile ? null : stat.IsSymbolicLink ? "it is a symbolic link" : stat.IsDirectory ? "it is a directory" : "it is not a regular file";

        public void Dispose()
        {
            foreach (var file in files)
            {
                file.Handle.Dispose();
            }
        }
    }

    /// <summary>Chunks handed to reader threads one at a time, and the bytes they have read together.</summary>
    private sealed class ChunkReader
    {
        private readonly IReadOnlyList<Chunk> chunks;
        private readonly int readBytes;
        private readonly CancellationToken stop;
        private int next = -1;
        private long bytes;

        public ChunkReader(IReadOnlyList<Chunk> chunks, int readBytes, CancellationToken stop)
        {
            this.chunks = chunks;
            this.readBytes = readBytes;
            this.stop = stop;
        }

        public int ChunkCount => chunks.Count;

        public long Bytes => Interlocked.Read(ref bytes);

        /// <summary>One reader thread: takes the next chunk until none is left or the prefetch is stopped.</summary>
        public void Run()
        {
            var buffer = GC.AllocateUninitializedArray<byte>(readBytes);
            int index;
            while (!stop.IsCancellationRequested && (index = Interlocked.Increment(ref next)) < chunks.Count)
            {
                Read(chunks[index], buffer);
            }
        }

        private void Read(Chunk chunk, byte[] buffer)
        {
            using var handle = ReadOnlyFile.Reopen(chunk.File.Handle, chunk.File.Path);
            for (var offset = chunk.Offset; offset < chunk.End && !stop.IsCancellationRequested;)
            {
                var read = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, chunk.End - offset)), offset);
                if (read == 0)
                {
                    return; // the file shrank since it was opened
                }

                offset += read;
                Interlocked.Add(ref bytes, read);
            }
        }
    }
}
