# Real CRIU, the vllm backend against the vLLM test double (tests/Engine/vllm_double): an EngineCore that vLLM's way
# of starting it makes a spawned process titled VLLM::EngineCore, with multiprocessing's resource tracker beside it
# and ZeroMQ ipc sockets in the run directory between it and the frontend. No GPU is involved.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Prompt = 'Once upon a time'
    $script:PythonPathBefore = $env:PYTHONPATH
    $env:PYTHONPATH = Join-Path $RepoRoot 'tests/Engine/vllm_double'
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }

    function Start-DoubleEngine([string] $Name, [hashtable] $EngineArgs = @{}) {
        Start-VllmEngine -Backend vllm -Model double/byte-lm -MaxModelLen 4096 -EngineArgs $EngineArgs -Name $Name
    }
}

AfterAll {
    $env:PYTHONPATH = $PythonPathBefore
    Remove-TestHome $TestHome
}

Describe 'Checkpoints of a vLLM engine' {
    BeforeEach {
        $script:Started = [System.Collections.Generic.List[object]]::new()
    }

    AfterEach {
        # vLLM titles its processes, so their command lines no longer name the test home: stop each engine by its
        # object and check every process of its tree is gone.
        $pids = @($Started | ForEach-Object { $_.ProcessTree.ProcessId })
        $Started | Stop-VllmEngine -Confirm:$false -ErrorAction Ignore
        foreach ($processId in $pids) { Test-ProcessAlive $processId | Should -BeFalse }
        Assert-NothingLeft $TestHome $Store
        Remove-Item -Recurse -Force $Store -ErrorAction Ignore
    }

    It 'restores an engine whose spawned EngineCore and resource tracker answer exactly as before' {
        $engine = Start-DoubleEngine saved
        $Started.Add($engine)
        @($engine.ProcessTree.CommandLine) | Should -Contain 'VLLM::EngineCore'
        @($engine.ProcessTree | Where-Object CommandLine -Match 'multiprocessing\.resource_tracker').Count | Should -Be 1
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 24

        $checkpoint = $engine | Save-EngineCheckpoint -Path $Store
        $checkpoint.ProcessTree.Count | Should -Be 3
        $restored = $checkpoint | Restore-EngineCheckpoint -Name restored
        $Started.Add($restored)

        $restored.State | Should -Be 'Ready'
        # Sleep level 2 by default: the weights were reloaded, then the manifest's canary answered again.
        $checkpoint.Manifest.Canary.TokenIds.Count | Should -Be 2
        $restored.StartupTime.Keys | Should -Contain 'canary'
        @($restored.ProcessTree.CommandLine) | Should -Contain 'VLLM::EngineCore'
        (Invoke-EngineGenerate -Engine $restored -Prompt $Prompt -MaxTokens 24).Text | Should -Be $before.Text
    }

    It 'restores a replica while the original serves on: each has its own ipc sockets' {
        $engine = Start-DoubleEngine original
        $Started.Add($engine)
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16
        $checkpoint, $resumed = $engine | Save-EngineCheckpoint -Path $Store -LeaveRunning -PassThru
        $replica = Restore-EngineCheckpoint -Path $checkpoint.Path -Name replica
        $Started.Add($replica)

        (Invoke-EngineGenerate -Engine $resumed -Prompt $Prompt -MaxTokens 16).Text | Should -Be $before.Text
        (Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 16).Text | Should -Be $before.Text
    }

    It 'refuses to save an engine on several GPUs with CheckpointUnsupported, and the engine serves on' {
        $engine = Start-DoubleEngine tp2 @{ tensor_parallel_size = 2 }
        $Started.Add($engine)
        @($engine.ProcessTree.CommandLine) | Should -Contain 'VLLM::Worker_TP1'

        $null = $engine | Save-EngineCheckpoint -Path $Store -ErrorVariable failures -ErrorAction SilentlyContinue

        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -Be 'CheckpointUnsupported,CriuCheckpoint.Commands.SaveEngineCheckpointCommand'
        $failures[0].Exception.Message | Should -Match 'Engine tp2 cannot be checkpointed: .*NCCL'
        Get-ChildItem $Store -Force -ErrorAction Ignore | Where-Object Name -NotMatch '^\.' | Should -BeNullOrEmpty
        (Get-VllmEngine -Name tp2).State | Should -Be 'Ready'
        (Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 4).Text | Should -Not -BeNullOrEmpty
    }
}
