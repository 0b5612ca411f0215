@{
    RootModule           = 'CriuCheckpoint.Cmdlets.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '5d0f7a53-8a3e-4c55-9d0e-2f7b1c6a9e41'
    Author               = 'CriuCheckpoint developers'
    CompanyName          = 'CriuCheckpoint'
    Copyright            = '(c) CriuCheckpoint developers. MIT licence.'
    Description          = 'Checkpoint fully initialised GPU inference engines (vLLM first) with CRIU and the NVIDIA checkpoint API, and restore them in seconds: here or on another host, once or as several replicas.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('CriuCheckpoint.format.ps1xml')
    TypesToProcess       = @('CriuCheckpoint.types.ps1xml')
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
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('CRIU', 'checkpoint', 'vLLM', 'inference', 'GPU', 'CUDA', 'Linux')
            ProjectUri = 'https://example.invalid/criu-checkpoint'
        }
    }
}
