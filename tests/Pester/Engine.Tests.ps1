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
        $Engine.StartupSeconds | Should -BeGreaterThan 0
        $Engine.StartupTime.Keys | Should -Contain 'launch'
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

    It 'takes the engine by name or id, from the command line or the pipeline, in every cmdlet' {
        ('pester-tiny' | Get-VllmEngine).Id | Should -Be $Engine.Id
        (Get-VllmEngine pester-tiny).Id | Should -Be $Engine.Id
        ($Engine.Id | Get-VllmEngine).Name | Should -Be 'pester-tiny'
        ($Engine | Get-VllmEngine).State | Should -Be 'Ready'
        ('pester-tiny' | Measure-EngineLink -Count 3).EngineName | Should -Be 'pester-tiny'
        (Measure-EngineLink $Engine.Id -Count 3).EngineName | Should -Be 'pester-tiny'
        ('pester-tiny' | Invoke-EngineGenerate -Prompt 'hi' -MaxTokens 2).Engine.Id | Should -Be $Engine.Id
    }

    It 'reports a prompt pipeline''s unknown engine once, as an error -ErrorAction silences' {
        $output = 'a', 'b', 'c' | Invoke-EngineGenerate -Engine no-such-engine -ErrorAction SilentlyContinue -ErrorVariable problems
        $output | Should -BeNullOrEmpty
        $problems | Should -HaveCount 1
        $problems[0].FullyQualifiedErrorId | Should -Be 'EngineNotFound,CriuCheckpoint.Commands.InvokeEngineGenerateCommand'
    }

    It 'writes each chunk as the engine sends it, not when the request is done' {
        $arrivals = Invoke-EngineGenerate -Engine $Engine -Prompt 'Namespaces' -MaxTokens 200 -Stream |
            ForEach-Object { [pscustomobject]@{ Chunk = $_; At = [DateTime]::UtcNow } }
        $final = ($arrivals | Where-Object { $_.Chunk.IsFinal }).Chunk.Result
        $spread = $arrivals[-1].At - $arrivals[0].At
        # Chunks held back until the end would all arrive within a moment of each other; streamed ones spread over the
        # decode, less what a busy machine delays and bunches.
        $spread.TotalSeconds | Should -BeGreaterThan (($final.DurationSeconds - $final.TimeToFirstTokenSeconds) / 4)
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
        ($Engine | Get-VllmEngine).State | Should -Be 'Stopped'
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

    It 'stops engines named from the pipeline and by position, and goes on past an unknown one' {
        $piped = Start-VllmEngine -Model tiny-4m -Name pester-piped
        $positional = Start-VllmEngine -Model tiny-4m -Name pester-positional
        try {
            'no-such-engine', 'pester-piped' | Stop-VllmEngine -ErrorAction SilentlyContinue -ErrorVariable problems
            $problems | Should -HaveCount 1
            $problems[0].FullyQualifiedErrorId | Should -Be 'EngineNotFound,CriuCheckpoint.Commands.StopVllmEngineCommand'
            Test-ProcessAlive $piped.ProcessId | Should -BeFalse
            Stop-VllmEngine pester-positional
            Test-ProcessAlive $positional.ProcessId | Should -BeFalse
        }
        finally {
            Stop-Process -Id ($piped, $positional).ProcessTree.ProcessId -Force -ErrorAction Ignore
        }
    }
}

Describe 'Naming an engine' {
    It '<Command> writes EngineNotFound (ObjectNotFound) for an unknown name, which -ErrorAction SilentlyContinue silences' -ForEach @(
        @{ Command = 'Get-VllmEngine'; Arguments = @{} }
        @{ Command = 'Stop-VllmEngine'; Arguments = @{} }
        @{ Command = 'Invoke-EngineGenerate'; Arguments = @{ Prompt = 'hi' } }
        @{ Command = 'Measure-EngineLink'; Arguments = @{} }
        @{ Command = 'Save-EngineCheckpoint'; Arguments = @{ Path = 'no-such-store' } }
        @{ Command = 'Get-GpuProcess'; Arguments = @{} }
    ) {
        $output = & $Command -Engine no-such-engine @Arguments -ErrorAction SilentlyContinue -ErrorVariable problems
        $output | Should -BeNullOrEmpty
        $problems | Should -HaveCount 1
        $problems[0].FullyQualifiedErrorId | Should -Be "EngineNotFound,$((Get-Command $Command).ImplementingType.FullName)"
        "$($problems[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        $problems[0].TargetObject | Should -Be 'no-such-engine'
    }

    Context 'two engines that one pattern matches' {
        BeforeAll {
            $script:Twins = 'pester-twin-a', 'pester-twin-b' | ForEach-Object { Start-VllmEngine -Model tiny-4m -Name $_ }
        }

        AfterAll {
            Stop-Process -Id $Twins.ProcessTree.ProcessId -Force -ErrorAction Ignore
        }

        It 'refuses the pattern where a cmdlet takes one engine, naming both' {
            $output = Measure-EngineLink 'pester-twin-*' -Count 1 -ErrorAction SilentlyContinue -ErrorVariable problems
            $output | Should -BeNullOrEmpty
            $problems | Should -HaveCount 1
            $problems[0].FullyQualifiedErrorId | Should -Be 'EngineNameAmbiguous,CriuCheckpoint.Commands.MeasureEngineLinkCommand'
            "$($problems[0].CategoryInfo.Category)" | Should -Be 'InvalidArgument'
            "$($problems[0])" | Should -Match 'pester-twin-a.*pester-twin-b'
        }

        It 'lists and stops every engine the pattern matches where a cmdlet takes several' {
            (Get-VllmEngine 'pester-twin-*').Name | Should -Be 'pester-twin-a', 'pester-twin-b'
            'pester-twin-*' | Stop-VllmEngine
            foreach ($twin in $Twins) { Test-ProcessAlive $twin.ProcessId | Should -BeFalse }
        }
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
