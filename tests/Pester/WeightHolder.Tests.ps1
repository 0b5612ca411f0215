# The weight-holder cmdlets as far as a host without a GPU takes them: the real holder process starts and fails for want
# of CUDA, and nothing of it is left; naming, -WhatIf, views. The GPU suite maps a holder's weights into a restored engine.

BeforeDiscovery {
    $script:HasCuda = Test-Path /dev/nvidia0
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:ModelDir = Join-Path $TestHome 'model'
    New-Item -ItemType Directory $ModelDir | Out-Null
    $env:PYTHONPATH = (Join-Path (Split-Path $ModuleManifest) 'EngineHost') + ':' + $env:PYTHONPATH
    & ($env:CRIUCHECKPOINT_PYTHON ?? '/usr/bin/python3') -c @"
import numpy as np
from engine_host import safetensors_files as stf
a = np.arange(64, dtype=np.float32)
stf.write_sharded('$ModelDir', [stf.TensorSpec('w', 'F32', (64,))], lambda spec: a.view(np.uint8), 1 << 20)
"@
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'Start-WeightHolder' {
    It 'fails with WeightHolderFailed naming the cause where torch or CUDA is missing, and leaves no process or run directory' -Skip:$HasCuda {
        $holder = Start-WeightHolder -Model $ModelDir -Name no-gpu -TimeoutSec 120 -ErrorVariable failure -ErrorAction SilentlyContinue
        $holder | Should -BeNullOrEmpty
        $failure[0].FullyQualifiedErrorId | Should -Be 'WeightHolderFailed,CriuCheckpoint.Commands.StartWeightHolderCommand'
        $failure[0].Exception.Message | Should -Match 'Weight holder no-gpu failed: .*(torch|CUDA).*\(backend_unavailable\)'
        Get-WeightHolder | Should -BeNullOrEmpty
        Get-ChildItem (Join-Path $TestHome 'holders') -ErrorAction Ignore | Should -BeNullOrEmpty
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    }

    It 'refuses a model directory that does not exist with ModelNotFound before starting anything' {
        Start-WeightHolder -Model (Join-Path $TestHome 'missing') -ErrorVariable failure -ErrorAction SilentlyContinue
        $failure[0].FullyQualifiedErrorId | Should -Be 'ModelNotFound,CriuCheckpoint.Commands.StartWeightHolderCommand'
        Get-ChildItem (Join-Path $TestHome 'holders') -ErrorAction Ignore | Should -BeNullOrEmpty
    }

    It 'starts nothing under -WhatIf' {
        Start-WeightHolder -Model $ModelDir -Gpu 1 -WhatIf | Should -BeNullOrEmpty
        Get-ChildItem (Join-Path $TestHome 'holders') -ErrorAction Ignore | Should -BeNullOrEmpty
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    }
}

Describe 'Get-WeightHolder and Stop-WeightHolder' {
    It 'write nothing when no holder runs, and name a missing holder with WeightHolderNotFound' {
        Get-WeightHolder | Should -BeNullOrEmpty
        Get-WeightHolder -Name 'llama*' | Should -BeNullOrEmpty
        Get-WeightHolder -Name llama -ErrorVariable failure -ErrorAction SilentlyContinue
        $failure[0].FullyQualifiedErrorId | Should -Be 'WeightHolderNotFound,CriuCheckpoint.Commands.GetWeightHolderCommand'
        Stop-WeightHolder -Name llama -ErrorVariable failure -ErrorAction SilentlyContinue
        $failure[0].FullyQualifiedErrorId | Should -Be 'WeightHolderNotFound,CriuCheckpoint.Commands.StopWeightHolderCommand'
    }

    It 'list and stop a holder another session recorded, by PID, with its run directory removed' {
        # A stand-in process recorded as a holder, as Start-WeightHolder records one: the registry's view of it is what
        # is tested here, and Stop-WeightHolder ends it by PID.
        $dir = Join-Path $TestHome 'holders/0123456789ab'
        New-Item -ItemType Directory -Force $dir | Out-Null
        $sleeper = Start-Process -PassThru -FilePath sleep -ArgumentList 300
        try {
            $start = (Get-Content -Raw "/proc/$($sleeper.Id)/stat").Split(') ')[1].Split(' ')[19]
            @{ id = '0123456789ab'; name = 'stand-in'; model = $ModelDir; gpu_index = 0; python = '/usr/bin/python3'
               run_directory = $dir; root_process_id = $sleeper.Id; root_start_time = [ulong]$start; created_at = (Get-Date).ToUniversalTime().ToString('o') } |
                ConvertTo-Json | Set-Content (Join-Path $dir 'holder.json')
            $listed = Get-WeightHolder -Name stand-in
            $listed.State | Should -Be 'Loading'
            $listed.ProcessId | Should -Be $sleeper.Id
            ($listed | Format-Table | Out-String -Width 80).Split("`n") | ForEach-Object { $_.TrimEnd().Length | Should -BeLessOrEqual 80 }

            Get-WeightHolder | Stop-WeightHolder -WhatIf
            $sleeper.HasExited | Should -BeFalse
            $stopped = Get-WeightHolder | Stop-WeightHolder -PassThru
            $stopped.State | Should -Be 'Exited'
            $sleeper.WaitForExit(5000) | Should -BeTrue
            Test-Path $dir | Should -BeFalse
        }
        finally {
            if (-not $sleeper.HasExited) { Stop-Process -Id $sleeper.Id -Force }
        }
    }
}
