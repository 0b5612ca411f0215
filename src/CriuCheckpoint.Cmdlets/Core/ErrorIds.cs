namespace CriuCheckpoint.Core;

/// <summary>The stable ErrorIds of this module. Scripts match on these: never rename one.</summary>
public static class ErrorIds
{
    public const string UnknownBackend = "UnknownBackend";
    public const string ModelNotFound = "ModelNotFound";
    public const string UnsupportedModel = "UnsupportedModel";
    public const string BadEngineArgs = "BadEngineArgs";
    public const string ConflictingParameters = "ConflictingParameters";
    public const string PythonNotFound = "PythonNotFound";
    public const string PythonPackageMissing = "PythonPackageMissing";
    public const string CurveUnavailable = "CurveUnavailable";
    public const string BackendUnavailable = "BackendUnavailable";
    public const string EngineNameInUse = "EngineNameInUse";
    public const string EngineStartupFailed = "EngineStartupFailed";
    public const string EngineStartupTimeout = "EngineStartupTimeout";
    public const string EngineNotFound = "EngineNotFound";
    public const string EngineNameAmbiguous = "EngineNameAmbiguous";
    public const string EngineNotRunning = "EngineNotRunning";
    public const string EngineDied = "EngineDied";
    public const string EngineNotReady = "EngineNotReady";
    public const string EngineRequestRejected = "EngineRequestRejected";
    public const string EngineRequestFailed = "EngineRequestFailed";
    public const string LinkTimeout = "LinkTimeout";
    public const string ProtocolMismatch = "ProtocolMismatch";
    public const string LinkKeysUnavailable = "LinkKeysUnavailable";
    public const string StopFailed = "StopFailed";
    public const string EngineLogUnreadable = "EngineLogUnreadable";
    public const string CriuNotFound = "CriuNotFound";
    public const string CriuTooOld = "CriuTooOld";
    public const string CriuDumpFailed = "CriuDumpFailed";
    public const string CriuRestoreFailed = "CriuRestoreFailed";
    public const string InsufficientPrivilege = "InsufficientPrivilege";
    public const string InsufficientSpace = "InsufficientSpace";
    public const string CheckpointPrepareFailed = "CheckpointPrepareFailed";
    public const string CheckpointUnsupported = "CheckpointUnsupported";
    public const string CheckpointNotFound = "CheckpointNotFound";
    public const string CheckpointCorrupt = "CheckpointCorrupt";
    public const string CheckpointIncompatible = "CheckpointIncompatible";
    public const string CheckpointInsecure = "CheckpointInsecure";
    public const string ResumeFailed = "ResumeFailed";
    public const string CanaryMismatch = "CanaryMismatch";
    public const string RestoreTimeout = "RestoreTimeout";
    public const string InsufficientGpuMemory = "InsufficientGpuMemory";
    public const string RestoredEngineNotCheckpointable = "RestoredEngineNotCheckpointable";
    public const string GpuDriverNotFound = "GpuDriverNotFound";
    public const string GpuDriverTooOld = "GpuDriverTooOld";
    public const string CudaLockTimeout = "CudaLockTimeout";
    public const string CudaCheckpointFailed = "CudaCheckpointFailed";
    public const string CudaRestoreFailed = "CudaRestoreFailed";
    public const string WeightHolderFailed = "WeightHolderFailed";
    public const string WeightHolderTimeout = "WeightHolderTimeout";
    public const string WeightHolderNameInUse = "WeightHolderNameInUse";
    public const string WeightHolderNotFound = "WeightHolderNotFound";
}
