using System.Runtime.InteropServices;
using CriuCheckpoint.Checkpoint;
using CriuCheckpoint.Native;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>
/// The weight prefetch on real files: what it reads, what it finds cached, what it refuses to open, and how it stops.
/// Files a test writes are in the page cache; those it wants read are dropped from it first, as on a cold node.
/// </summary>
public sealed class WeightPrefetcherTests : IDisposable
{
    private readonly string model = Directory.CreateTempSubdirectory("criu-weights-").FullName;

    // Small chunks and reads, so a few MiB make many chunks for three readers.
    private readonly WeightPrefetcher prefetcher = new(threads: 3, chunkBytes: 1 << 20, readBytes: 64 << 10);

    public void Dispose() => Directory.Delete(model, recursive: true);

    [Fact]
    public async Task It_reads_every_byte_of_the_safetensors_files_directly_in_the_directory_and_nothing_else()
    {
        var sizes = new[] { (5L << 20) + 123, 1L << 20, 0 };
        for (var i = 0; i < sizes.Length; i++)
        {
            WriteFile($"model-0000{i + 1}-of-00003.safetensors", sizes[i]);
        }

        DropFromPageCache();
        WriteFile("config.json", 4096);
        WriteFile(".partial.safetensors", 4096);
        Directory.CreateDirectory(Path.Combine(model, "original"));
        WriteFile("original/consolidated.safetensors", 4096);

        var result = await prefetcher.ReadAsync(model, CancellationToken.None);

        Assert.Equal(3, result.Files);
        Assert.Equal(sizes.Sum(), result.Bytes);
        Assert.Equal(0, result.CachedBytes);
        Assert.Equal(sizes.Sum(), result.FileBytes);
        Assert.True(result.Complete);
        Assert.Empty(result.Refused);
        Assert.Equal(model, result.Directory);
        Assert.True(result.BytesPerSecond > 0);
    }

    [Fact]
    public async Task What_the_page_cache_holds_whole_already_is_not_read_again()
    {
        WriteFile("cold.safetensors", 3 << 20);
        DropFromPageCache();
        WriteFile("warm.safetensors", 2 << 20);
        using (var warm = File.OpenHandle(Path.Combine(model, "warm.safetensors")))
        {
            Assert.True(ReadOnlyFile.CachedBytes(warm, 0, 2 << 20) is null or 2 << 20, "a file just written is in the page cache");
        }

        var result = await prefetcher.ReadAsync(model, CancellationToken.None);

        using var cold = File.OpenHandle(Path.Combine(model, "cold.safetensors"));
        var cachestat = ReadOnlyFile.CachedBytes(cold, 0, 1) is not null;
        Assert.Equal(cachestat ? 3L << 20 : 5L << 20, result.Bytes);
        Assert.Equal(cachestat ? 2L << 20 : 0, result.CachedBytes);
        Assert.True(result.Complete);
    }

    [Fact]
    public async Task A_symlink_a_fifo_and_a_directory_named_like_weights_are_refused_and_not_read()
    {
        WriteFile("model.safetensors", 2 << 20);
        DropFromPageCache();
        var outside = Path.Combine(Path.GetTempPath(), $"criu-outside-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(outside, new byte[3 << 20]);
        try
        {
            File.CreateSymbolicLink(Path.Combine(model, "link.safetensors"), outside);
            Fifo.Create(Path.Combine(model, "pipe.safetensors"));
            Directory.CreateDirectory(Path.Combine(model, "folder.safetensors"));

            var result = await prefetcher.ReadAsync(model, CancellationToken.None);

            Assert.Equal(1, result.Files);
            Assert.Equal(2L << 20, result.Bytes + result.CachedBytes);
            Assert.Equal(new[]
            {
                $"{model}/folder.safetensors: it is a directory",
                $"{model}/link.safetensors: it is a symbolic link",
                $"{model}/pipe.safetensors: it is not a regular file",
            }, result.Refused);
        }
        finally
        {
            File.Delete(outside);
        }
    }

    [Fact]
    public async Task A_model_directory_reached_through_a_symlink_is_read_as_its_engine_reads_it()
    {
        WriteFile("model.safetensors", 1 << 20);
        var link = model + "-current";
        Directory.CreateSymbolicLink(link, model);
        try
        {
            var result = await prefetcher.ReadAsync(link, CancellationToken.None);

            Assert.Equal(1L << 20, result.Bytes + result.CachedBytes);
        }
        finally
        {
            File.Delete(link);
        }
    }

    [Fact]
    public async Task A_stopped_prefetch_reads_no_further_and_says_what_it_read()
    {
        WriteFile("model.safetensors", 4 << 20);
        DropFromPageCache();
        using var stop = new CancellationTokenSource();
        await stop.CancelAsync();

        var result = await prefetcher.ReadAsync(model, stop.Token);

        Assert.Equal(0, result.Bytes + result.CachedBytes);
        Assert.Equal(4L << 20, result.FileBytes);
        Assert.False(result.Complete);
    }

    [Fact]
    public async Task A_missing_directory_is_a_native_failure_naming_it()
    {
        var missing = Path.Combine(model, "gone");

        var failure = await Assert.ThrowsAsync<NativeException>(() => prefetcher.ReadAsync(missing, CancellationToken.None));

        Assert.Equal(2, failure.ErrorNumber); // ENOENT
        Assert.StartsWith(missing + ": ", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_where_the_directory_should_be_is_a_native_failure()
    {
        WriteFile("model.safetensors", 1);

        var failure = await Assert.ThrowsAsync<NativeException>(() => prefetcher.ReadAsync(Path.Combine(model, "model.safetensors"), CancellationToken.None));

        Assert.Equal(DirectoryChain.NotDirectoryError, failure.ErrorNumber);
    }

    /// <summary>Every file of the model directory out of the page cache: written back, then dropped (POSIX_FADV_DONTNEED).</summary>
    private void DropFromPageCache()
    {
        foreach (var path in Directory.GetFiles(model))
        {
            using var file = File.OpenHandle(path);
            Assert.Equal(0, Fsync(file));
            Assert.Equal(0, Fadvise(file, 0, 0, 4));
        }
    }

    [DllImport("libc", EntryPoint = "fsync")]
    private static extern int Fsync(SafeFileHandle file);

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int Fadvise(SafeFileHandle file, long offset, long length, int advice);

    private void WriteFile(string name, long size)
    {
        var bytes = new byte[size];
        Random.Shared.NextBytes(bytes);
        File.WriteAllBytes(Path.Combine(model, name), bytes);
    }
}
