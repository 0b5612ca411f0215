using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CriuCheckpoint.Core;
using CriuCheckpoint.Gpu;
using CriuCheckpoint.Native;
using Xunit;

namespace CriuCheckpoint.Tests;

public sealed class GpuDriverTests
{
    private const string Gpu0 = "GPU-00112233-4455-6677-8899-aabbccddeeff";
    private const string Gpu1 = "GPU-10000000-0000-0000-0000-000000000001";
    private const string Gpu2 = "GPU-20000000-0000-0000-0000-000000000002";

    private static bool HostHasDriver => NativeLibrary.TryLoad(Nvml.Library, out _);

    [Theory]
    [InlineData(0, "CUDA_SUCCESS")]
    [InlineData(1, "CUDA_ERROR_INVALID_VALUE")]
    [InlineData(3, "CUDA_ERROR_NOT_INITIALIZED")]
    [InlineData(401, "CUDA_ERROR_ILLEGAL_STATE")]
    [InlineData(600, "CUDA_ERROR_NOT_READY")]
    [InlineData(801, "CUDA_ERROR_NOT_SUPPORTED")]
    [InlineData(999, "CUDA_ERROR_UNKNOWN")]
    [InlineData(4242, "CUresult 4242")]
    public void CuResultsHaveTheDriversNames(int result, string name)
    {
        Assert.Equal(name, CudaResult.Name(result));
    }

    [Fact]
    public void CheckpointArgumentStructsHaveTheDriversLayout()
    {
        // cuda.h: every args struct is 64 bytes; CUcheckpointGpuPair is two 16-byte CUuuids.
        Assert.Equal(8, IntPtr.Size);
        Assert.Equal(64, Unsafe.SizeOf<CudaLockArgs>());
        Assert.Equal(64, Unsafe.SizeOf<CudaCheckpointArgs>());
        Assert.Equal(64, Unsafe.SizeOf<CudaUnlockArgs>());
        Assert.Equal(64, Unsafe.SizeOf<CudaRestoreArgs>());
        Assert.Equal(0, (int)Marshal.OffsetOf<CudaLockArgs>(nameof(CudaLockArgs.TimeoutMs)));
        Assert.Equal(0, (int)Marshal.OffsetOf<CudaRestoreArgs>(nameof(CudaRestoreArgs.GpuPairs)));
        Assert.Equal(8, (int)Marshal.OffsetOf<CudaRestoreArgs>(nameof(CudaRestoreArgs.GpuPairsCount)));
        Assert.Equal(32, Unsafe.SizeOf<CudaGpuPair>());
        Assert.Equal(16, (int)Marshal.OffsetOf<CudaGpuPair>(nameof(CudaGpuPair.NewUuid)));
    }

    [Fact]
    public void NvmlStructsHaveTheLibrarysLayout()
    {
        // nvml.h: nvmlProcessInfo_t { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; }.
        Assert.Equal(24, Unsafe.SizeOf<NvmlProcessInfo>());
        Assert.Equal(8, (int)Marshal.OffsetOf<NvmlProcessInfo>(nameof(NvmlProcessInfo.UsedGpuMemory)));
        Assert.Equal(16, (int)Marshal.OffsetOf<NvmlProcessInfo>(nameof(NvmlProcessInfo.GpuInstanceId)));
        Assert.Equal(20, (int)Marshal.OffsetOf<NvmlProcessInfo>(nameof(NvmlProcessInfo.ComputeInstanceId)));
        Assert.Equal(24, Unsafe.SizeOf<NvmlMemory>());
    }

    [Fact]
    public void GpuUuidsBecomeTheSixteenBytesTheDriverReads()
    {
        var expected = Convert.FromHexString("00112233445566778899aabbccddeeff");
        Assert.Equal(expected, GpuPair.UuidBytes(Gpu0));
        Assert.Equal(expected, GpuPair.UuidBytes("00112233445566778899AABBCCDDEEFF"));
        Assert.Throws<FormatException>(() => GpuPair.UuidBytes("MIG-00112233-4455-6677-8899-aabbccddeeff"));
        Assert.Throws<FormatException>(() => GpuPair.UuidBytes("GPU-0011"));

        var native = CudaCheckpointApi.NativePairs(new[] { new GpuPair(Gpu0, Gpu1) });

        var pair = Assert.Single(native);
        Assert.Equal(expected, ((ReadOnlySpan<byte>)pair.OldUuid).ToArray());
        Assert.Equal(GpuPair.UuidBytes(Gpu1), ((ReadOnlySpan<byte>)pair.NewUuid).ToArray());
    }

    [Fact]
    public void GpusThatStayPutNeedNoPairs()
    {
        Assert.Empty(GpuMap.Pairs(new[] { Gpu0, Gpu1 }, new[] { Gpu0, Gpu1 }));
        Assert.Empty(GpuMap.Pairs(new[] { Gpu0 }, new[] { Gpu1, Gpu0 }));
    }

    [Fact]
    public void AnExplicitMapIsCompletedSoEveryCheckpointedGpuHasAPair()
    {
        var pairs = GpuMap.Pairs(new[] { Gpu0, Gpu1 }, new[] { Gpu0, Gpu1, Gpu2 }, new Dictionary<string, string> { [Gpu0] = Gpu2 });

        Assert.Equal(new[] { new GpuPair(Gpu0, Gpu2), new GpuPair(Gpu1, Gpu1) }, pairs);
    }

    [Fact]
    public void OnAnotherHostGpusPairByIndex()
    {
        var pairs = GpuMap.Pairs(new[] { Gpu0, Gpu1 }, new[] { Gpu2, Gpu0.Replace('0', '9') });

        Assert.Equal(new[] { new GpuPair(Gpu0, Gpu2), new GpuPair(Gpu1, Gpu0.Replace('0', '9')) }, pairs);
    }

    [Fact]
    public void AMapThatCannotBeMetIsCheckpointIncompatible()
    {
        Assert.Equal(ErrorIds.CheckpointIncompatible,
            Assert.Throws<CriuCheckpointException>(() => GpuMap.Pairs(new[] { Gpu0, Gpu1 }, new[] { Gpu2 })).ErrorId);
        Assert.Contains(Gpu2, Assert.Throws<CriuCheckpointException>(() =>
            GpuMap.Pairs(new[] { Gpu0 }, new[] { Gpu2 }, new Dictionary<string, string> { [Gpu2] = Gpu2 })).Message);
        Assert.Contains(Gpu1, Assert.Throws<CriuCheckpointException>(() =>
            GpuMap.Pairs(new[] { Gpu0 }, new[] { Gpu2 }, new Dictionary<string, string> { [Gpu0] = Gpu1 })).Message);
    }

    [Fact]
    public void WithoutADriverTheInventoryReportsGpuDriverNotFoundAndNothingElseEscapes()
    {
        if (HostHasDriver)
        {
            // A GPU host: the same calls work.
            Assert.NotEmpty(GpuInventory.ForHost().Collect().Devices);
            Assert.NotNull(CudaCheckpointApi.TryOpen());
            return;
        }

        var inventory = Assert.Throws<CriuCheckpointException>(() => GpuInventory.ForHost().Collect());
        Assert.Equal(ErrorIds.GpuDriverNotFound, inventory.ErrorId);
        Assert.Equal(FailureKind.NotInstalled, inventory.Kind);
        Assert.Contains("libnvidia-ml.so.1", inventory.Message);
        Assert.Null(CudaCheckpointApi.TryOpen());
        var open = Assert.Throws<CriuCheckpointException>(() => CudaCheckpointApi.Open());
        Assert.Equal(ErrorIds.GpuDriverNotFound, open.ErrorId);
        Assert.Contains("libcuda.so.1", open.Message);
        // Asked again, the same answer: the failed load is remembered, not retried into a DllNotFoundException.
        Assert.Equal(ErrorIds.GpuDriverNotFound, Assert.Throws<CriuCheckpointException>(() => new NvmlReader().Read()).ErrorId);
        Assert.Equal(NativeFailure.Missing, Assert.Throws<NativeException>(() => CudaDriver.Instance).Failure);
        Assert.False(GpuInventory.ForHost().AnyUsesCuda(new[] { Environment.ProcessId, 1 }));
    }
}
