# Real CRIU, real tiny engines: the canary recorded at the save and checked at the restore, a tampered canary refused
# with CanaryMismatch leaving nothing behind, and the pre-dump inventory refusing an engine that holds a TCP connection
# to a peer outside its tree while it serves on.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Prompt = 'Once upon a time'
    $script:Python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { '/usr/bin/python3' }
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }

    # Rewrites manifest.json as a hostile copy would: with Python, so every other field keeps its exact text.
    function Edit-ManifestCanary([string] $Checkpoint, [string] $Change) {
        $manifest = Join-Path $Checkpoint 'manifest.json'
        & $Python -c "import json,sys; p=sys.argv[1]; m=json.load(open(p)); c=m['canary']; $Change; open(p,'w').write(json.dumps(m, indent=2))" $manifest
        if ($LASTEXITCODE -ne 0) { throw "could not rewrite $manifest" }
    }
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'The canary' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
        Remove-Item -Recurse -Force $Store -ErrorAction Ignore
    }

    It 'is recorded at the save and answered again by every restored replica before it serves' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name canary
        $checkpoint = $engine | Save-EngineCheckpoint -Path $Store

        $canary = $checkpoint.Manifest.Canary
        $canary.Prompt | Should -Be 'The capital of France is'
        $canary.TokenIds.Count | Should -Be 2
        $canary.Logprobs.Count | Should -Be 2
        $canary.Logprobs | ForEach-Object { $_ | Should -BeLessOrEqual 0 }
        $checkpoint.Timings.Keys | Should -Contain 'canary'
        $runtime = $checkpoint.Manifest.Runtime
        $runtime.Processes.Role | Should -Be 'frontend', 'core-0', 'core-1'
        $runtime.Versions['python'] | Should -Match '^3\.'
        $runtime.Environment.Sha256 | Should -Match '^[0-9a-f]{64}$'

        $replicas = @(Restore-EngineCheckpoint -Path $checkpoint.Path -Count 2 -Name replica)
        $replicas.Count | Should -Be 2
        foreach ($replica in $replicas) {
            $replica.StartupTime.Keys | Should -Contain 'canary'
            $ready = Get-Content -Raw (Join-Path $replica.RunDirectory 'ready.json') | ConvertFrom-Json -AsHashtable
            $ready.phases.Keys | Should -Contain 'resume_canary'
            (Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 4).FinishReason | Should -Not -Be 'abort'
        }
    }

    It 'that was tampered with in the manifest fails the restore with CanaryMismatch and leaves nothing behind' {
        $engine = Start-VllmEngine -Model tiny-16m -Name tampered
        $checkpoint = $engine | Save-EngineCheckpoint -Path $Store
        Edit-ManifestCanary $checkpoint.Path "c['token_ids'][1] = (c['token_ids'][1] + 1) % 256"
        $expected = (Get-Content -Raw (Join-Path $checkpoint.Path 'manifest.json') | ConvertFrom-Json).canary.token_ids

        $restored = Restore-EngineCheckpoint -Path $checkpoint.Path -Name tampered-replica -ErrorVariable failures -ErrorAction SilentlyContinue

        $restored | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -Be 'CanaryMismatch,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].Exception.Message | Should -Match ([regex]::Escape("expected [$($expected -join ', ')], got ["))
        Get-VllmEngine | Should -BeNullOrEmpty
        Get-ChildItem (Join-Path $TestHome 'replicas') -ErrorAction Ignore | Should -BeNullOrEmpty

        # -SkipCanary lets the same replica serve.
        $unchecked = Restore-EngineCheckpoint -Path $checkpoint.Path -Name unchecked -SkipCanary
        $unchecked.State | Should -Be 'Ready'
        $unchecked.StartupTime['canary'] | Should -Be 0
    }

    It 'is checked by the engine itself when it serves on after -LeaveRunning' {
        $engine = Start-VllmEngine -Model tiny-16m -Name leave-running
        $null, $resumed = $engine | Save-EngineCheckpoint -Path $Store -LeaveRunning -PassThru

        $resumed.State | Should -Be 'Ready'
        $ready = Get-Content -Raw (Join-Path $resumed.RunDirectory 'ready.json') | ConvertFrom-Json -AsHashtable
        $ready.phases.Keys | Should -Contain 'resume_canary'
    }
}

Describe 'The pre-dump inventory' {
    AfterEach {
        Remove-Item Env:CRIUCHECKPOINT_TEST_HOLD -ErrorAction Ignore
        $env:PYTHONPATH = $PythonPathBefore
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
        Remove-Item -Recurse -Force $Store -ErrorAction Ignore
    }

    It 'refuses an engine holding a TCP connection to a peer outside its tree, which serves on' {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $listener.Start()
        try {
            $script:PythonPathBefore = $env:PYTHONPATH
            $env:PYTHONPATH = Join-Path $RepoRoot 'tests/Engine/holders'
            $env:CRIUCHECKPOINT_TEST_HOLD = "tcp:127.0.0.1:$($listener.LocalEndpoint.Port)"
            $engine = Start-VllmEngine -Model tiny-16m -Name connected
            $running = Start-Stoppable { param($Engine) Invoke-EngineGenerate -Engine $Engine -Prompt 'keep going' -MaxTokens 200 } @{ Engine = $engine }

            $null = $engine | Save-EngineCheckpoint -Path $Store -ErrorVariable failures -ErrorAction SilentlyContinue

            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -Be 'CheckpointUnsupported,CriuCheckpoint.Commands.SaveEngineCheckpointCommand'
            $failures[0].Exception.Message | Should -Match "frontend \(pid $($engine.ProcessId)\) fd \d+ is a TCP connection from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:$($listener.LocalEndpoint.Port)"
            Get-ChildItem $Store -Force -ErrorAction Ignore | Where-Object Name -NotMatch '^\.' | Should -BeNullOrEmpty
            # Refused before the drain: the request in flight ran to its end, and the engine still answers.
            $running.PowerShell.EndInvoke($running.Handle).FinishReason | Should -Not -Be 'abort'
            (Get-VllmEngine -Name connected).State | Should -Be 'Ready'
            (Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 4).Text | Should -Not -BeNullOrEmpty
        }
        finally {
            if ($running) { Stop-Stoppable $running }
            $listener.Stop()
        }
    }
}
