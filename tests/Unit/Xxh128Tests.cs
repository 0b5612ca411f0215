using System.IO.Hashing;
using CriuCheckpoint.Checkpoint;
using Xunit;

namespace CriuCheckpoint.Tests;

/// <summary>The module's XXH3-128 against System.IO.Hashing's, which the manifests written before it used.</summary>
public sealed class Xxh128Tests
{
    public static TheoryData<bool> Paths => new() { true, false };

    [Theory]
    [MemberData(nameof(Paths))]
    public void Every_length_up_to_three_blocks_hashes_as_system_io_hashing_does(bool vectorized)
    {
        var input = RandomBytes(3 * 1024 + 130, seed: 1);
        for (var length = 0; length <= input.Length; length++)
        {
            var hasher = new Xxh128(vectorized);
            hasher.Append(input.AsSpan(0, length));
            Assert.True(XxHash128.Hash(input.AsSpan(0, length)).AsSpan().SequenceEqual(hasher.GetCurrentHash()), $"length {length}");
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Appends_of_any_size_give_the_hash_of_their_concatenation(bool vectorized)
    {
        var random = new Random(2);
        foreach (var length in new[] { 241, 256, 257, 300, 1023, 1024, 1025, 4096, 65536, 1 << 20, (1 << 20) + 63, 3_000_001 })
        {
            var input = RandomBytes(length, seed: length);
            var hasher = new Xxh128(vectorized);
            for (var offset = 0; offset < length;)
            {
                var piece = Math.Min(length - offset, random.Next(4) switch { 0 => random.Next(1, 8), 1 => random.Next(60, 70), 2 => random.Next(200, 300), _ => random.Next(1, 1 << 18) });
                hasher.Append(input.AsSpan(offset, piece));
                offset += piece;
            }

            Assert.True(XxHash128.Hash(input).AsSpan().SequenceEqual(hasher.GetCurrentHash()), $"length {length}");
        }
    }

    [Fact]
    public void The_hash_so_far_leaves_the_state_to_go_on_with()
    {
        var input = RandomBytes(5000, seed: 3);
        var hasher = new Xxh128();
        hasher.Append(input.AsSpan(0, 2000));
        Assert.Equal(XxHash128.Hash(input.AsSpan(0, 2000)), hasher.GetCurrentHash());
        hasher.Append(input.AsSpan(2000));
        Assert.Equal(XxHash128.Hash(input), hasher.GetCurrentHash());
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
