# Get-GpuProcess on a host without an NVIDIA driver: one GpuDriverNotFound error, no objects, nothing else breaks.
# (On a GPU host, Gpu.Tests.ps1 exercises it against real engines.)

BeforeDiscovery {
    $handle = [IntPtr]::Zero
    $script:HasDriver = [System.Runtime.InteropServices.NativeLibrary]::TryLoad('libnvidia-ml.so.1', [ref]$handle)
}

Describe 'Get-GpuProcess without a GPU driver' -Skip:$HasDriver {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'Common.ps1')
        $script:TestHome = New-TestHome
    }

    AfterAll {
        Remove-TestHome $TestHome
    }

    It 'writes one GpuDriverNotFound error and no objects' {
        $output = @(Get-GpuProcess -ErrorVariable problems -ErrorAction SilentlyContinue)

        $output.Count | Should -Be 0
        $problems.Count | Should -Be 1
        $problems[0].FullyQualifiedErrorId | Should -Be 'GpuDriverNotFound,CriuCheckpoint.Commands.GetGpuProcessCommand'
        "$($problems[0].CategoryInfo.Category)" | Should -Be 'NotInstalled'
        $problems[0].ErrorDetails.Message | Should -Match 'libnvidia-ml\.so\.1'
    }

    It 'says so once however many engines arrive on the pipeline' {
        $engines = 1..3 | ForEach-Object { [CriuCheckpoint.Engine.EngineInfo]::new() }

        $output = @($engines | Get-GpuProcess -ErrorVariable problems -ErrorAction SilentlyContinue)

        $output.Count | Should -Be 0
        $problems.Count | Should -Be 1
    }

    It 'stops a script under -ErrorAction Stop with the ErrorId' {
        { Get-GpuProcess -ProcessId $PID -ErrorAction Stop } | Should -Throw -ErrorId 'GpuDriverNotFound,CriuCheckpoint.Commands.GetGpuProcessCommand'
    }
}
