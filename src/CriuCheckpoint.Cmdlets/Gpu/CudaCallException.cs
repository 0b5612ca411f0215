namespace CriuCheckpoint.Gpu;

/// <summary>A cuCheckpointProcess* call that returned an error: which function, on which process, and the CUresult.</summary>
internal sealed class CudaCallException : Exception
{
    public CudaCallException(string function, int processId, int result, string resultName)
        : base($"{function}({processId}) returned {resultName} ({result}).")
    {
        Function = function;
        ProcessId = processId;
        Result = result;
        ResultName = resultName;
    }

    public string Function { get; }

    public int ProcessId { get; }

    /// <summary>The CUresult code.</summary>
    public int Result { get; }

    /// <summary>The CUresult's name, e.g. CUDA_ERROR_NOT_READY.</summary>
    public string ResultName { get; }
}
