using System.Buffers;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// The hash a manifest records for each of a checkpoint's files, as lowercase hex: XXH128 (<see cref="Xxh128"/>) of
/// each 64 MiB piece of the file, and for a file of more than one piece the XXH128 of its pieces' hashes in order. A
/// file of one piece (the log and all but the largest images) has its plain XXH128, what xxhsum -H2 prints. Pieces are
/// what lets one large image be hashed on every core at once: the 2 GB pages image of an 8B engine took one core 0.4 s.
/// Chosen by measurement on the project's 2-core machine (AMD EPYC, AVX2; 400 MiB of image files in the page cache,
/// 1 MiB reads, median of 5): XXH128 hashed 5,000–5,500 MB/s, Blake3 3.0.2 1,000–1,900 MB/s; in memory 12,400 against
/// 1,300 MB/s. XXH128 costs little more than the read itself, which also warms the page cache CRIU reads next. It is
/// not a cryptographic hash: it catches corruption and bad copies, not a forger (docs/security.md).
/// </summary>
internal static class FileHash
{
    public const int HexLength = 32;
    public const long PieceSize = 64L << 20;
    private const int BufferSize = 1 << 20;

    /// <summary>The hash of one file, its pieces one after another.</summary>
    public static string Of(string path, CancellationToken cancellationToken, long pieceSize = PieceSize)
    {
        var hash = new PiecewiseHash(pieceSize);
        var buffer = new byte[BufferSize];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hash.Append(buffer.AsSpan(0, read));
        }

        return hash.ToHex();
    }

    /// <summary>The hash of each file, every piece of every file on every core at once, the longest pieces first.</summary>
    public static async Task<IReadOnlyDictionary<string, string>> OfAllAsync(IEnumerable<string> paths, CancellationToken cancellationToken, long pieceSize = PieceSize)
    {
        var digests = new Dictionary<string, byte[][]>(StringComparer.Ordinal);
        var pieces = new List<Piece>();
        foreach (var path in paths)
        {
            var length = new FileInfo(path).Length;
            var count = PieceCount(length, pieceSize);
            digests[path] = new byte[count][];
            pieces.AddRange(Enumerable.Range(0, count).Select(i => new Piece(path, i, i * pieceSize, Math.Min(pieceSize, length - (i * pieceSize)))));
        }

        var options = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = cancellationToken };
        await Parallel.ForEachAsync(pieces.OrderByDescending(p => p.Length), options, (piece, token) =>
        {
            digests[piece.Path][piece.Index] = HashPiece(piece, token);
            return ValueTask.CompletedTask;
        }).ConfigureAwait(false);
        return digests.ToDictionary(d => d.Key, d => ToHex(Combine(d.Value)), StringComparer.Ordinal);
    }

    public static bool IsHash(string? value) => value is { Length: HexLength } && value.All(char.IsAsciiHexDigitLower);

    /// <summary>An empty file is one empty piece.</summary>
    internal static int PieceCount(long length, long pieceSize) => length == 0 ? 1 : checked((int)(((length - 1) / pieceSize) + 1));

    internal static byte[] Combine(IReadOnlyList<byte[]> digests)
    {
        if (digests.Count == 1)
        {
            return digests[0];
        }

        var root = new Xxh128();
        foreach (var digest in digests)
        {
            root.Append(digest);
        }

        return root.GetCurrentHash();
    }

    internal static string ToHex(byte[] hash) => Convert.ToHexString(hash).ToLowerInvariant();

    /// <summary>
    /// The piece's bytes as the file has them now: one that shrank since it was measured gives fewer bytes, so a
    /// hash that differs from the manifest's, never a wait.
    /// </summary>
    private static byte[] HashPiece(Piece piece, CancellationToken cancellationToken)
    {
        var hasher = new Xxh128();
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            using var handle = File.OpenHandle(piece.Path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
            var offset = piece.Offset;
            var end = piece.Offset + piece.Length;
            while (offset < end)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var read = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(BufferSize, end - offset)), offset);
                if (read == 0)
                {
                    break;
                }

                hasher.Append(buffer.AsSpan(0, read));
                offset += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return hasher.GetCurrentHash();
    }

    private sealed record Piece(string Path, int Index, long Offset, long Length);
}
