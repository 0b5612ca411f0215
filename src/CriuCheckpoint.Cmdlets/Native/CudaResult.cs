using System.Globalization;

namespace CriuCheckpoint.Native;

/// <summary>
/// CUresult codes of the CUDA driver (cuda.h, enum cudaError_enum) that the checkpoint API returns or that explain why
/// the driver cannot be used. The names are the driver's own (cuGetErrorName), so messages read the same whether they
/// came from the driver or from this table, which covers the times no driver is loaded to ask.
/// </summary>
internal static class CudaResult
{
    public const int Success = 0;
    public const int InvalidValue = 1;
    public const int NotInitialized = 3;
    public const int NotReady = 600;

    private static readonly Dictionary<int, string> Names = new()
    {
        [0] = "CUDA_SUCCESS",
        [1] = "CUDA_ERROR_INVALID_VALUE",
        [2] = "CUDA_ERROR_OUT_OF_MEMORY",
        [3] = "CUDA_ERROR_NOT_INITIALIZED",
        [4] = "CUDA_ERROR_DEINITIALIZED",
        [34] = "CUDA_ERROR_STUB_LIBRARY",
        [46] = "CUDA_ERROR_DEVICE_UNAVAILABLE",
        [100] = "CUDA_ERROR_NO_DEVICE",
        [101] = "CUDA_ERROR_INVALID_DEVICE",
        [201] = "CUDA_ERROR_INVALID_CONTEXT",
        [304] = "CUDA_ERROR_OPERATING_SYSTEM",
        [400] = "CUDA_ERROR_INVALID_HANDLE",
        [401] = "CUDA_ERROR_ILLEGAL_STATE",
        [500] = "CUDA_ERROR_NOT_FOUND",
        [600] = "CUDA_ERROR_NOT_READY",
        [800] = "CUDA_ERROR_NOT_PERMITTED",
        [801] = "CUDA_ERROR_NOT_SUPPORTED",
        [802] = "CUDA_ERROR_SYSTEM_NOT_READY",
        [803] = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        [909] = "CUDA_ERROR_TIMEOUT",
        [999] = "CUDA_ERROR_UNKNOWN",
    };

    /// <summary>The CUresult's name from this table, e.g. CUDA_ERROR_NOT_READY; "CUresult N" for a code it lacks.</summary>
    public static string Name(int result) =>
        Names.TryGetValue(result, out var name) ? name : $"CUresult {result.ToString(CultureInfo.InvariantCulture)}";
}
