@{
    RootModule           = 'CriuCheckpoint.Cmdlets.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '5d0f7a53-8a3e-4c55-9d0e-2f7b1c6a9e41'
    Author               = 'CriuCheckpoint developers'
    CompanyName          = 'CriuCheckpoint'
    # The licence is MIT: LICENSE at the module's root; THIRD-PARTY-NOTICES.txt there lists what the module
    # redistributes (NetMQ, CRIU, ...) with their licences.
    Copyright            = '(c) 2026 CriuCheckpoint developers. MIT licence.'
    Description          = 'Checkpoint fully initialised GPU inference engines (vLLM first) with CRIU and the NVIDIA checkpoint API, and restore them in seconds: here or on another host, once or as several replicas.'
    # 7.6, not 7.4: NetMQ 4.0.4.5 references System.Collections.Immutable and System.ServiceModel.Primitives
    # 10.0.0.0, the versions PowerShell 7.6 and its .NET 10 bring. 7.4 and 7.5 bring older ones under the same names,
    # and PowerShell's process binds a name to its own copy first, so the module ships neither and needs 7.6.
    PowerShellVersion    = '7.6'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('CriuCheckpoint.format.ps1xml')
    CmdletsToExport      = @(
        'Start-VllmEngine'
        'Stop-VllmEngine'
        'Resume-VllmEngine'
        'Get-VllmEngine'
        'Get-EngineLog'
        'Get-EngineModel'
        'Invoke-EngineGenerate'
        'Measure-EngineLink'
        'Save-EngineCheckpoint'
        'Restore-EngineCheckpoint'
        'Get-EngineCheckpoint'
        'Remove-EngineCheckpoint'
        'Test-EngineCheckpoint'
        'Export-EngineCheckpoint'
        'Import-EngineCheckpoint'
        'Test-EngineCheckpointSupport'
        'Get-GpuProcess'
        'Start-WeightHolder'
        'Get-WeightHolder'
        'Stop-WeightHolder'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('CRIU', 'checkpoint', 'restore', 'vLLM', 'inference', 'LLM', 'GPU', 'CUDA', 'Linux', 'PSEdition_Core')
            # No ProjectUri or LicenseUri: the project has no public address yet. The licence ships in the package
            # (LICENSE, THIRD-PARTY-NOTICES.txt, licenses/).
            ReleaseNotes = @'
0.1.0: the first release, for PowerShell 7.6 on Linux x86_64 (checkpoints and restores need root, as CRIU does).
- Start-VllmEngine starts an inference engine detached (a tiny numpy CPU engine by default; torch and vLLM
  backends), Get-VllmEngine and Stop-VllmEngine find and stop engines of this host from any session,
  Invoke-EngineGenerate generates with batching, streaming and Ctrl+C, Measure-EngineLink times the link.
- Save-EngineCheckpoint checkpoints an engine with CRIU 4.2 (shipped in tools/criu) and the NVIDIA checkpoint API;
  Restore-EngineCheckpoint restores it, once or as several replicas, each in its own PID and network namespace;
  Start-VllmEngine -CheckpointStore restores when it can and saves when it cannot.
- Get-, Test-, Remove-, Export- and Import-EngineCheckpoint manage stores: every image hashed (XXH128) and
  verified, stores and checkpoints checked for ownership and modes before they are read.
- Test-EngineCheckpointSupport checks CRIU, the kernel, privileges and the GPU driver; Get-GpuProcess lists the
  processes using the GPUs.
'@
        }
    }
}
