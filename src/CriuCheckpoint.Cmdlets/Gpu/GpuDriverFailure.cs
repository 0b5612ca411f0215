using CriuCheckpoint.Core;
using CriuCheckpoint.Native;

namespace CriuCheckpoint.Gpu;

/// <summary>Names a failure of the NVIDIA libraries with the module's ErrorIds.</summary>
internal static class GpuDriverFailure
{
    public static CriuCheckpointException From(NativeException failure) => failure.Failure switch
    {
        NativeFailure.TooOld => new CriuCheckpointException(ErrorIds.GpuDriverTooOld, FailureKind.NotInstalled, failure.Message, failure.Source, failure),
        NativeFailure.Missing => new CriuCheckpointException(ErrorIds.GpuDriverNotFound, FailureKind.NotInstalled, failure.Message, failure.Source, failure),
        _ => new CriuCheckpointException(ErrorIds.GpuDriverNotFound, FailureKind.ResourceUnavailable, failure.Message, failure.Source, failure),
    };

    /// <summary>Runs a call into the NVIDIA libraries, naming its failure with an ErrorId.</summary>
    public static T Call<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (NativeException failure)
        {
            throw From(failure);
        }
    }
}
