using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace CriuCheckpoint.Native;

// The argument structs of the cuCheckpointProcess* functions (cuda.h, CUDA 13.x; NVIDIA CUDA Driver API reference,
// "CUDA Checkpointing" and the struct pages CUcheckpointLockArgs, CUcheckpointRestoreArgs, CUcheckpointGpuPair).
// Each is 64 bytes; every field this module does not set is reserved and must be zero, which a default struct is.
// CUDA 13.0 to 13.4 renamed the reserved tail of the restore and checkpoint args (customStorageInfo_out, padding0),
// but kept the size and the offsets of the fields used here, so the same layout fits every driver since r580.

/// <summary>CUcheckpointLockArgs: timeoutMs (0 = wait forever), reserved0, reserved1[7].</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct CudaLockArgs
{
    [FieldOffset(0)]
    public uint TimeoutMs;
}

/// <summary>CUcheckpointCheckpointArgs: all reserved (a null customStorageInfo_out: GPU memory goes to host memory).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct CudaCheckpointArgs
{
}

/// <summary>CUcheckpointUnlockArgs: all reserved.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct CudaUnlockArgs
{
}

/// <summary>CUcheckpointRestoreArgs: gpuPairs (CUcheckpointGpuPair*), gpuPairsCount, then reserved.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal unsafe struct CudaRestoreArgs
{
    [FieldOffset(0)]
    public CudaGpuPair* GpuPairs;

    [FieldOffset(8)]
    public uint GpuPairsCount;
}

/// <summary>CUcheckpointGpuPair: the CUuuid (16 bytes) of the GPU a process was checkpointed on and of the GPU to restore it onto.</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct CudaGpuPair
{
    public CudaUuid OldUuid;
    public CudaUuid NewUuid;
}

/// <summary>CUuuid: char bytes[16], the same 16 bytes NVML prints as GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.</summary>
[InlineArray(16)]
internal struct CudaUuid
{
    private byte first;
}
