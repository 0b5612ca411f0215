using CriuCheckpoint.Checkpoint;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class FileHashTests : IDisposable
{
    private const long Piece = 4096;
    private readonly string directory = Directory.CreateTempSubdirectory("filehash-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4095)]
    [InlineData(4096)]
    public void A_file_of_one_piece_has_its_plain_xxh128(int length)
    {
        var path = Write(length, seed: length);
        var plain = new Xxh128();
        plain.Append(File.ReadAllBytes(path));

        Assert.Equal(FileHash.ToHex(plain.GetCurrentHash()), FileHash.Of(path, CancellationToken.None, Piece));
    }

    [Fact]
    public void A_file_of_several_pieces_has_the_xxh128_of_its_pieces_hashes_in_order()
    {
        var bytes = File.ReadAllBytes(Write(3 * 4096 + 17, seed: 1));
        var root = new Xxh128();
        for (var offset = 0; offset < bytes.Length; offset += (int)Piece)
        {
            var piece = new Xxh128();
            piece.Append(bytes.AsSpan(offset, (int)Math.Min(Piece, bytes.Length - offset)));
            root.Append(piece.GetCurrentHash());
        }

        Assert.Equal(FileHash.ToHex(root.GetCurrentHash()), FileHash.Of(Path.Combine(directory, "1"), CancellationToken.None, Piece));
    }

    [Fact]
    public async Task Hashing_every_piece_at_once_gives_each_file_the_hash_read_in_order()
    {
        var paths = new[] { 0, 1, 4096, 4097, 8192, 3 * 4096 + 17, 20 * 4096 + 5 }.Select(length => Write(length, seed: length)).ToArray();

        var hashes = await FileHash.OfAllAsync(paths, CancellationToken.None, Piece);

        Assert.All(paths, path => Assert.Equal(FileHash.Of(path, CancellationToken.None, Piece), hashes[path]));
        Assert.Equal(paths.Length, hashes.Count);
    }

    [Fact]
    public void Bytes_appended_in_any_sizes_hash_as_the_file_does()
    {
        var path = Write(5 * 4096 + 3, seed: 2);
        var bytes = File.ReadAllBytes(path);
        var hash = new PiecewiseHash(Piece);
        var random = new Random(3);
        for (var offset = 0; offset < bytes.Length;)
        {
            var take = Math.Min(bytes.Length - offset, random.Next(1, 9000));
            hash.Append(bytes.AsSpan(offset, take));
            offset += take;
        }

        Assert.Equal(FileHash.Of(path, CancellationToken.None, Piece), hash.ToHex());
    }

    [Fact]
    public void The_module_hashes_by_pieces_of_64_MiB() => Assert.Equal(64L << 20, FileHash.PieceSize);

    private string Write(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        var path = Path.Combine(directory, seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
