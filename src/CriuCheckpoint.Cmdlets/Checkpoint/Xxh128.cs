using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// Streaming XXH3-128 with seed 0 and the default secret: the same value as xxhsum -H2 and System.IO.Hashing's
/// XxHash128, which the tests compare it with. The module hashes with its own because a library's vector code starts
/// as unoptimized tier-0 code and is promoted only after 100 ms without new JIT activity, which a pwsh session busy
/// with a save or restore rarely has: the first 400 MiB a fresh pwsh hashed took 1.7 s instead of 0.1 s. The stripe
/// loop here is compiled fully optimized on its first call (AggressiveOptimization).
/// </summary>
internal sealed class Xxh128
{
    public const int HashLength = 16;

    private const int StripeLength = 64;
    private const int StripesPerBlock = (SecretLength - StripeLength) / 8;
    private const int SecretLength = 192;
    private const int ScrambleOffset = SecretLength - StripeLength;
    private const int LastStripeOffset = SecretLength - StripeLength - 7;
    private const int MidSizeMax = 240;
    private const int PendingCapacity = 256;

    private const uint Prime32_1 = 0x9E3779B1U;
    private const uint Prime32_2 = 0x85EBCA77U;
    private const uint Prime32_3 = 0xC2B2AE3DU;
    private const ulong Prime64_1 = 0x9E3779B185EBCA87UL;
    private const ulong Prime64_2 = 0xC2B2AE3D27D4EB4FUL;
    private const ulong Prime64_3 = 0x165667B19E3779F9UL;
    private const ulong Prime64_4 = 0x85EBCA77C2B2AE63UL;
    private const ulong Prime64_5 = 0x27D4EB2F165667C5UL;
    private const ulong PrimeMx1 = 0x165667919E3779F9UL;
    private const ulong PrimeMx2 = 0x9FB21C651E98DF25UL;

    /// <summary>XXH3's default secret (kSecret in xxhash.h).</summary>
    private static ReadOnlySpan<byte> Secret =>
    [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
        0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
        0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
        0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
        0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
        0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
        0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
        0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
        0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
        0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
        0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
        0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
    ];

    private readonly bool vectorized;
    private readonly ulong[] accumulators = [Prime32_3, Prime64_1, Prime64_2, Prime64_3, Prime64_4, Prime32_2, Prime64_5, Prime32_1];

    // Input not yet folded in: all of it while 256 bytes or fewer came (the short forms need the whole input), later
    // the 1 to 64 bytes after the last whole stripe, which stay until more input shows that stripe is not the last.
    private readonly byte[] pending = new byte[PendingCapacity];
    private readonly byte[] lastFolded = new byte[StripeLength];
    private int pendingLength;
    private int stripeInBlock;
    private long length;

    public Xxh128()
        : this(Avx2.IsSupported)
    {
    }

    /// <param name="vectorized">AVX2 for the stripes; false takes the portable loop (tests compare the two).</param>
    internal Xxh128(bool vectorized) => this.vectorized = vectorized && Avx2.IsSupported;

    public void Append(ReadOnlySpan<byte> data)
    {
        length += data.Length;
        if (pendingLength + data.Length <= PendingCapacity)
        {
            data.CopyTo(pending.AsSpan(pendingLength));
            pendingLength += data.Length;
            return;
        }

        // Complete the pending bytes to whole stripes; data still follows them, so none of them is the last.
        var fill = Math.Min((StripeLength - (pendingLength % StripeLength)) % StripeLength, data.Length);
        data[..fill].CopyTo(pending.AsSpan(pendingLength));
        pendingLength += fill;
        data = data[fill..];
        if (data.IsEmpty)
        {
            return;
        }

        FoldStripes(pending.AsSpan(0, pendingLength));
        // Every byte but the last 1 to 64 goes in whole stripes now.
        var whole = (data.Length - 1) / StripeLength * StripeLength;
        FoldStripes(data[..whole]);
        data[whole..].CopyTo(pending);
        pendingLength = data.Length - whole;
    }

    /// <summary>The hash of everything appended, big-endian (the canonical form xxhsum prints); the state is kept.</summary>
    public byte[] GetCurrentHash()
    {
        var (low, high) = length <= MidSizeMax ? Short(pending.AsSpan(0, pendingLength)) : Long();
        var hash = new byte[HashLength];
        BinaryPrimitives.WriteUInt64BigEndian(hash, high);
        BinaryPrimitives.WriteUInt64BigEndian(hash.AsSpan(8), low);
        return hash;
    }

    private void FoldStripes(ReadOnlySpan<byte> stripes)
    {
        if (stripes.IsEmpty)
        {
            return;
        }

        stripeInBlock = vectorized ? FoldVector(accumulators, stripes, stripeInBlock) : FoldPortable(accumulators, stripes, stripeInBlock);
        stripes[^StripeLength..].CopyTo(lastFolded);
    }

    private (ulong Low, ulong High) Long()
    {
        var acc = (ulong[])accumulators.Clone();
        var rest = pending.AsSpan(0, pendingLength);
        var whole = (rest.Length - 1) / StripeLength * StripeLength;
        FoldPortable(acc, rest[..whole], stripeInBlock);
        Span<byte> last = stackalloc byte[StripeLength];
        if (rest.Length >= StripeLength)
        {
            rest[^StripeLength..].CopyTo(last);
        }
        else
        {
            // The last stripe reaches back into input already folded.
            lastFolded.AsSpan(rest.Length).CopyTo(last);
            rest.CopyTo(last[(StripeLength - rest.Length)..]);
        }

        AccumulatePortable(acc, last, Secret[LastStripeOffset..]);
        var low = MergeAccumulators(acc, Secret[11..], unchecked((ulong)length * Prime64_1));
        var high = MergeAccumulators(acc, Secret[(SecretLength - StripeLength - 11)..], ~unchecked((ulong)length * Prime64_2));
        return (low, high);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int FoldPortable(ulong[] acc, ReadOnlySpan<byte> stripes, int stripeInBlock)
    {
        var secret = Secret;
        for (var offset = 0; offset < stripes.Length; offset += StripeLength)
        {
            AccumulatePortable(acc, stripes.Slice(offset, StripeLength), secret[(stripeInBlock * 8)..]);
            if (++stripeInBlock == StripesPerBlock)
            {
                Scramble(acc);
                stripeInBlock = 0;
            }
        }

        return stripeInBlock;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int FoldVector(ulong[] acc, ReadOnlySpan<byte> stripes, int stripeInBlock)
    {
        ref var secret = ref MemoryMarshal.GetReference(Secret);
        ref var input = ref MemoryMarshal.GetReference(stripes);
        var low = Vector256.Create(acc[0], acc[1], acc[2], acc[3]);
        var high = Vector256.Create(acc[4], acc[5], acc[6], acc[7]);
        for (nuint offset = 0; offset < (nuint)stripes.Length; offset += StripeLength)
        {
            var key = (nuint)(stripeInBlock * 8);
            low = AccumulateVector(low, Vector256.LoadUnsafe(ref input, offset), Vector256.LoadUnsafe(ref secret, key));
            high = AccumulateVector(high, Vector256.LoadUnsafe(ref input, offset + 32), Vector256.LoadUnsafe(ref secret, key + 32));
            if (++stripeInBlock == StripesPerBlock)
            {
                low = ScrambleVector(low, Vector256.LoadUnsafe(ref secret, ScrambleOffset));
                high = ScrambleVector(high, Vector256.LoadUnsafe(ref secret, ScrambleOffset + 32));
                stripeInBlock = 0;
            }
        }

        low.CopyTo(acc);
        high.CopyTo(acc, 4);
        return stripeInBlock;
    }

    /// <summary>Four lanes of one stripe: acc[i ^ 1] += data[i]; acc[i] += lo32(data[i] ^ key[i]) * hi32(data[i] ^ key[i]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> AccumulateVector(Vector256<ulong> acc, Vector256<byte> data, Vector256<byte> key)
    {
        var values = data.AsUInt64();
        var keyed = (data ^ key).AsUInt64();
        var product = Avx2.Multiply(keyed.AsUInt32(), Vector256.ShiftRightLogical(keyed, 32).AsUInt32());
        var swapped = Avx2.Shuffle(values.AsUInt32(), 0b01_00_11_10).AsUInt64();
        return acc + swapped + product;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> ScrambleVector(Vector256<ulong> acc, Vector256<byte> key)
    {
        var mixed = (acc ^ Vector256.ShiftRightLogical(acc, 47)) ^ key.AsUInt64();
        var prime = Vector256.Create((ulong)Prime32_1).AsUInt32();
        var low = Avx2.Multiply(mixed.AsUInt32(), prime);
        var high = Avx2.Multiply(Vector256.ShiftRightLogical(mixed, 32).AsUInt32(), prime);
        return low + Vector256.ShiftLeft(high, 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulatePortable(ulong[] acc, ReadOnlySpan<byte> stripe, ReadOnlySpan<byte> secret)
    {
        for (var i = 0; i < 8; i++)
        {
            var value = BinaryPrimitives.ReadUInt64LittleEndian(stripe[(8 * i)..]);
            var keyed = value ^ BinaryPrimitives.ReadUInt64LittleEndian(secret[(8 * i)..]);
            acc[i ^ 1] += value;
            acc[i] += (keyed & 0xFFFFFFFF) * (keyed >> 32);
        }
    }

    private static void Scramble(ulong[] acc)
    {
        var key = Secret[ScrambleOffset..];
        for (var i = 0; i < 8; i++)
        {
            var value = acc[i] ^ (acc[i] >> 47) ^ BinaryPrimitives.ReadUInt64LittleEndian(key[(8 * i)..]);
            acc[i] = value * Prime32_1;
        }
    }

    private static ulong MergeAccumulators(ulong[] acc, ReadOnlySpan<byte> secret, ulong start)
    {
        var result = start;
        for (var i = 0; i < 4; i++)
        {
            result += Mix2Accumulators(acc[2 * i], acc[(2 * i) + 1], secret[(16 * i)..]);
        }

        return Avalanche(result);
    }

    private static ulong Mix2Accumulators(ulong a, ulong b, ReadOnlySpan<byte> secret) =>
        FoldedMultiply(a ^ Read64(secret, 0), b ^ Read64(secret, 8));

    private static (ulong Low, ulong High) Short(ReadOnlySpan<byte> input) => input.Length switch
    {
        0 => (Avalanche64(Read64(Secret, 64) ^ Read64(Secret, 72)), Avalanche64(Read64(Secret, 80) ^ Read64(Secret, 88))),
        <= 3 => OneToThree(input),
        <= 8 => FourToEight(input),
        <= 16 => NineToSixteen(input),
        <= 128 => UpTo128(input),
        _ => UpTo240(input),
    };

    private static (ulong Low, ulong High) OneToThree(ReadOnlySpan<byte> input)
    {
        var combinedLow = ((uint)input[0] << 16) | ((uint)input[input.Length >> 1] << 24) | input[^1] | ((uint)input.Length << 8);
        var combinedHigh = BitOperations.RotateLeft(BinaryPrimitives.ReverseEndianness(combinedLow), 13);
        var flipLow = (ulong)(Read32(Secret, 0) ^ Read32(Secret, 4));
        var flipHigh = (ulong)(Read32(Secret, 8) ^ Read32(Secret, 12));
        return (Avalanche64(combinedLow ^ flipLow), Avalanche64(combinedHigh ^ flipHigh));
    }

    private static (ulong Low, ulong High) FourToEight(ReadOnlySpan<byte> input)
    {
        var value = Read32(input, 0) + ((ulong)Read32(input, input.Length - 4) << 32);
        var keyed = value ^ (Read64(Secret, 16) ^ Read64(Secret, 24));
        var high = Math.BigMul(keyed, Prime64_1 + ((ulong)input.Length << 2), out var low);
        high += low << 1;
        low ^= high >> 3;
        low ^= low >> 35;
        low *= PrimeMx2;
        low ^= low >> 28;
        return (low, Avalanche(high));
    }

    private static (ulong Low, ulong High) NineToSixteen(ReadOnlySpan<byte> input)
    {
        var flipLow = Read64(Secret, 32) ^ Read64(Secret, 40);
        var flipHigh = Read64(Secret, 48) ^ Read64(Secret, 56);
        var first = Read64(input, 0);
        var last = Read64(input, input.Length - 8);
        var high = Math.BigMul(first ^ last ^ flipLow, Prime64_1, out var low);
        low += (ulong)(input.Length - 1) << 54;
        last ^= flipHigh;
        high += last + ((last & 0xFFFFFFFF) * (Prime32_2 - 1));
        low ^= BinaryPrimitives.ReverseEndianness(high);
        var resultHigh = Math.BigMul(low, Prime64_2, out var resultLow);
        resultHigh += high * Prime64_2;
        return (Avalanche(resultLow), Avalanche(resultHigh));
    }

    private static (ulong Low, ulong High) UpTo128(ReadOnlySpan<byte> input)
    {
        var n = input.Length;
        var acc = ((ulong)n * Prime64_1, 0UL);
        if (n > 32)
        {
            if (n > 64)
            {
                if (n > 96)
                {
                    acc = Mix32(acc, input[48..], input[(n - 64)..], Secret[96..]);
                }

                acc = Mix32(acc, input[32..], input[(n - 48)..], Secret[64..]);
            }

            acc = Mix32(acc, input[16..], input[(n - 32)..], Secret[32..]);
        }

        acc = Mix32(acc, input, input[(n - 16)..], Secret);
        return Finish(acc, n);
    }

    private static (ulong Low, ulong High) UpTo240(ReadOnlySpan<byte> input)
    {
        var n = input.Length;
        var acc = ((ulong)n * Prime64_1, 0UL);
        for (var i = 32; i < 160; i += 32)
        {
            acc = Mix32(acc, input[(i - 32)..], input[(i - 16)..], Secret[(i - 32)..]);
        }

        acc = (Avalanche(acc.Item1), Avalanche(acc.Item2));
        for (var i = 160; i <= n; i += 32)
        {
            acc = Mix32(acc, input[(i - 32)..], input[(i - 16)..], Secret[(3 + i - 160)..]);
        }

        acc = Mix32(acc, input[(n - 16)..], input[(n - 32)..], Secret[(136 - 17 - 16)..]);
        return Finish(acc, n);
    }

    private static (ulong Low, ulong High) Finish((ulong Low, ulong High) acc, int length)
    {
        var low = acc.Low + acc.High;
        var high = (acc.Low * Prime64_1) + (acc.High * Prime64_4) + ((ulong)length * Prime64_2);
        return (Avalanche(low), 0UL - Avalanche(high));
    }

    private static (ulong Low, ulong High) Mix32((ulong Low, ulong High) acc, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, ReadOnlySpan<byte> secret)
    {
        var low = acc.Low + Mix16(first, secret);
        low ^= Read64(second, 0) + Read64(second, 8);
        var high = acc.High + Mix16(second, secret[16..]);
        high ^= Read64(first, 0) + Read64(first, 8);
        return (low, high);
    }

    private static ulong Mix16(ReadOnlySpan<byte> input, ReadOnlySpan<byte> secret) =>
        FoldedMultiply(Read64(input, 0) ^ Read64(secret, 0), Read64(input, 8) ^ Read64(secret, 8));

    private static ulong FoldedMultiply(ulong a, ulong b)
    {
        var high = Math.BigMul(a, b, out var low);
        return low ^ high;
    }

    private static ulong Avalanche(ulong h)
    {
        h ^= h >> 37;
        h *= PrimeMx1;
        return h ^ (h >> 32);
    }

    private static ulong Avalanche64(ulong h)
    {
        h ^= h >> 33;
        h *= Prime64_2;
        h ^= h >> 29;
        h *= Prime64_3;
        return h ^ (h >> 32);
    }

    private static ulong Read64(ReadOnlySpan<byte> bytes, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(bytes[offset..]);

    private static uint Read32(ReadOnlySpan<byte> bytes, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(bytes[offset..]);
}
