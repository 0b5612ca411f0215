# End to end on the embedded tiny CPU engine: real Python engine host, real pyzmq, real NetMQ.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Prompts = 'The quick brown fox', 'Once upon a time', 'CRIU dumps', 'PowerShell pipes',
        'GPU memory', 'Namespaces', 'Hello, world', 'Checkpoint me'
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'A tiny engine with two workers' {
    BeforeAll {
        $script:Engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name pester-tiny -ReadyTimeout 120
    }

    AfterAll {
        if ($Engine) { Stop-VllmEngine -Engine $Engine -ErrorAction Ignore }
    }

    It 'starts detached and reports its process tree' {
        $Engine.State | Should -Be 'Ready'
        $Engine.StartedFrom | Should -Be 'Cold'
        $Engine.Endpoint | Should -Match '^tcp://127\.0\.0\.1:\d+$'
        $Engine.ProcessTree.Count | Should -BeGreaterOrEqual 3
        $Engine.ProcessTree[0].ProcessId | Should -Be $Engine.ProcessId
        $Engine.ConfigHash | Should -Match '^[0-9a-f]{16}$'
        $Engine.StartupTime.Total.TotalSeconds | Should -BeGreaterThan 0
        $Engine.StartupTime.Phases.Key | Should -Contain 'launch'
        Test-Path $Engine.LogPath | Should -BeTrue
        # Detached: its own session, not a child of this pwsh.
        $stat = (Get-Content -Raw "/proc/$($Engine.ProcessId)/stat") -replace '^.*\) ', '' -split ' '
        [int]$stat[3] | Should -Be $Engine.ProcessId
    }

    It 'answers eight prompts at once with the greedy text each gets alone' {
        $together = $Prompts | Invoke-EngineGenerate -Engine $Engine -MaxTokens 12
        $together.Count | Should -Be 8
        foreach ($result in $together) {
            $result.FinishReason | Should -BeIn 'length', 'stop'
            $result.CompletionTokens | Should -BeGreaterThan 0
            $result.TokenIds.Count | Should -Be $result.CompletionTokens
            $result.Engine.Name | Should -Be 'pester-tiny'
        }
        foreach ($prompt in $Prompts[0, 3, 7]) {
            $alone = Invoke-EngineGenerate -Engine $Engine -Prompt $prompt -MaxTokens 12
            $alone.Text | Should -Be ($together | Where-Object Prompt -EQ $prompt).Text
        }
    }

    It 'binds the engine from the pipeline and the prompt by name' {
        $result = $Engine | Invoke-EngineGenerate -Prompt 'Once upon a time' -MaxTokens 4
        $result.Prompt | Should -Be 'Once upon a time'
        $result.CompletionTokens | Should -BeLessOrEqual 4
        (Invoke-EngineGenerate -Engine pester-tiny -Prompt 'Once upon a time' -MaxTokens 4).Text | Should -Be $result.Text
    }

    It 'streams chunks that add up to the completion' {
        $chunks = Invoke-EngineGenerate -Engine $Engine -Prompt 'Namespaces' -MaxTokens 10 -Stream
        $final = $chunks | Where-Object IsFinal
        $final | Should -HaveCount 1
        -join ($chunks.Text) | Should -Be $final.Result.Text
        $chunks.Count | Should -BeGreaterThan 2
    }

    It 'reproduces seeded sampling' {
        $a = Invoke-EngineGenerate -Engine $Engine -Prompt 'GPU memory' -MaxTokens 10 -Temperature 0.9 -TopP 0.95 -Seed 42
        $b = Invoke-EngineGenerate -Engine $Engine -Prompt 'GPU memory' -MaxTokens 10 -Temperature 0.9 -TopP 0.95 -Seed 42
        $a.Text | Should -Be $b.Text
    }

    It 'aborts in-flight requests on the engine when the pipeline is stopped (Ctrl+C)' {
        $run = Start-Stoppable { param($Name) Invoke-EngineGenerate -Engine $Name -Prompt 'long', 'longer' -MaxTokens 400 } @{ Name = 'pester-tiny' }
        $deadline = [DateTime]::UtcNow.AddSeconds(20)
        do { Start-Sleep -Milliseconds 100 } until ((Get-VllmEngine -Name pester-tiny).InFlightRequests -ge 2 -or [DateTime]::UtcNow -gt $deadline)
        (Get-VllmEngine -Name pester-tiny).InFlightRequests | Should -Be 2
        Stop-Stoppable $run
        $deadline = [DateTime]::UtcNow.AddSeconds(5)
        do { Start-Sleep -Milliseconds 100 } until ((Get-VllmEngine -Name pester-tiny).InFlightRequests -eq 0 -or [DateTime]::UtcNow -gt $deadline)
        (Get-VllmEngine -Name pester-tiny).InFlightRequests | Should -Be 0
    }

    It 'answers a request refused by the engine with a clear error and keeps serving' {
        { Invoke-EngineGenerate -Engine $Engine -Prompt ('x' * 600) -MaxTokens 8 -ErrorAction Stop } |
            Should -Throw -ErrorId 'EngineRequestRejected,CriuCheckpoint.Commands.InvokeEngineGenerateCommand'
        (Invoke-EngineGenerate -Engine $Engine -Prompt 'still here' -MaxTokens 2).CompletionTokens | Should -BeGreaterThan 0
    }

    It 'is listed with its live state by a new pwsh session' {
        $lines = Invoke-ChildPwsh "Import-Module '$ModuleManifest'; Get-VllmEngine -Name pester-tiny | ForEach-Object { '{0}|{1}|{2}' -f `$_.State, `$_.ProcessId, `$_.Endpoint }"
        $lines | Should -Be "Ready|$($Engine.ProcessId)|$($Engine.Endpoint)"
    }

    It 'stops with its whole tree and leaves no run directory' {
        $pids = $Engine.ProcessTree.ProcessId
        $Engine | Stop-VllmEngine -Confirm:$false
        foreach ($processId in $pids) { Test-ProcessAlive $processId | Should -BeFalse }
        Test-Path $Engine.RunDirectory | Should -BeFalse
        Get-VllmEngine -Name pester-tiny -ErrorAction Ignore | Should -BeNullOrEmpty
        $script:Engine = $null
    }
}

Describe 'Stop-VllmEngine' {
    It 'honours -WhatIf and stops by name' {
        $engine = Start-VllmEngine -Model tiny-4m -Name pester-whatif
        try {
            Stop-VllmEngine -Name pester-whatif -WhatIf
            Test-ProcessAlive $engine.ProcessId | Should -BeTrue
            Stop-VllmEngine -Name 'pester-what*' -PassThru | ForEach-Object State | Should -Be 'Stopped'
            Test-ProcessAlive $engine.ProcessId | Should -BeFalse
        }
        finally {
            Stop-Process -Id $engine.ProcessTree.ProcessId -Force -ErrorAction Ignore
        }
    }

    It 'reports an unknown engine' {
        { Stop-VllmEngine -Name no-such-engine -ErrorAction Stop } | Should -Throw -ErrorId 'EngineNotFound,CriuCheckpoint.Commands.StopVllmEngineCommand'
    }
}

Describe 'Failures a user can cause or meet' {
    AfterEach {
        # Nothing a failed start touched may outlive it: no process, no run directory.
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
        Get-ChildItem (Join-Path $TestHome 'engines') -ErrorAction Ignore | Should -BeNullOrEmpty
    }

    It 'refuses an unknown backend' {
        { Start-VllmEngine -Backend llamacpp -ErrorAction Stop } | Should -Throw -ErrorId 'UnknownBackend,CriuCheckpoint.Commands.StartVllmEngineCommand'
    }

    It 'refuses a model path that does not exist' {
        $err = { Start-VllmEngine -Backend torch -Model ./no/such/model -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'ModelNotFound,CriuCheckpoint.Commands.StartVllmEngineCommand'
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'refuses an unknown tiny preset with the engine''s own reason' {
        $err = { Start-VllmEngine -Model tiny-9000g -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Match '^(ModelNotFound|BadEngineArgs),'
    }

    It 'names the missing package when Python has no pyzmq' {
        $python = Join-Path $TestHome 'python-without-site'
        Set-Content $python "#!/bin/sh`nexec $env:CRIUCHECKPOINT_PYTHON -S `"`$@`"`n"
        chmod +x $python
        $err = { Start-VllmEngine -Model tiny-4m -PythonPath $python -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'PythonPackageMissing,CriuCheckpoint.Commands.StartVllmEngineCommand'
        $err.CategoryInfo.Category | Should -Be 'NotInstalled'
        "$err" | Should -Match 'zmq|msgpack|numpy'
        Remove-Item $python
    }

    It 'reports an engine that crashes during startup with the end of its log' {
        # 300 MB of address space cannot hold a 256 MB model being generated: the host dies loading it.
        $python = Join-Path $TestHome 'python-small-memory'
        Set-Content $python "#!/bin/sh`nulimit -v 300000`nexec $env:CRIUCHECKPOINT_PYTHON `"`$@`"`n"
        chmod +x $python
        $err = { Start-VllmEngine -Model tiny-256m -PythonPath $python -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'EngineStartupFailed,CriuCheckpoint.Commands.StartVllmEngineCommand'
        $err.ErrorDetails.Message | Should -Match 'MemoryError|memory'
        Remove-Item $python
    }

    It 'stops an engine that is not ready in time' {
        $err = { Start-VllmEngine -Model tiny-256m -ReadyTimeout 1 -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'EngineStartupTimeout,CriuCheckpoint.Commands.StartVllmEngineCommand'
        $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
    }

    It 'reports an engine that dies mid-request' {
        $engine = Start-VllmEngine -Model tiny-64m -Name pester-dies
        try {
            $killer = Start-ThreadJob { param($ProcessId) Start-Sleep -Milliseconds 800; Stop-Process -Id $ProcessId -Force } -ArgumentList $engine.ProcessId
            $err = { Invoke-EngineGenerate -Engine $engine -Prompt 'a long answer' -MaxTokens 480 -ErrorAction Stop } | Should -Throw -PassThru
            $err.FullyQualifiedErrorId | Should -Be 'EngineDied,CriuCheckpoint.Commands.InvokeEngineGenerateCommand'
            $killer | Wait-Job | Remove-Job
        }
        finally {
            Stop-VllmEngine -Engine $engine -Confirm:$false
        }
    }

    It 'refuses to generate on a stopped engine' {
        $engine = Start-VllmEngine -Model tiny-4m
        Stop-VllmEngine -Engine $engine
        { Invoke-EngineGenerate -Engine $engine -Prompt 'hi' -ErrorAction Stop } | Should -Throw -ErrorId 'EngineNotRunning,CriuCheckpoint.Commands.InvokeEngineGenerateCommand'
    }
}
