# Real CRIU, real engines: save, restore into fresh PID namespaces, replicas, the auto path and the faults.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Prompt = 'Once upon a time'
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'Save and restore' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
        Remove-Item -Recurse -Force $Store -ErrorAction Ignore
    }

    It 'restores an engine that answers exactly as before the checkpoint' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name saved
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 24
        $checkpoint = $engine | Save-EngineCheckpoint -Path $Store

        $checkpoint.Path | Should -Be (Join-Path $Store $engine.ConfigHash)
        $checkpoint.ProcessTree.Count | Should -Be 3
        $checkpoint.Timings.Keys | Should -Be 'preflight', 'prepare', 'canary', 'criu-dump', 'hash', 'manifest', 'publish'
        (Get-Item $Store).UnixMode | Should -Be 'drwx------'
        Test-Path (Join-Path $checkpoint.Path 'manifest.json') | Should -BeTrue
        foreach ($processId in $engine.ProcessTree.ProcessId) { Test-ProcessAlive $processId | Should -BeFalse }
        Test-Path $engine.RunDirectory | Should -BeFalse

        $restored = $checkpoint | Restore-EngineCheckpoint -Name restored
        $restored.StartedFrom | Should -Be 'Checkpoint'
        $restored.State | Should -Be 'Ready'
        $restored.StartupTime.Keys | Should -Contain 'criu-restore'
        (Invoke-EngineGenerate -Engine $restored -Prompt $Prompt -MaxTokens 24).Text | Should -Be $before.Text
    }

    It 'restores while the original keeps running (-LeaveRunning): same PIDs inside, other PIDs outside' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name original
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16
        $checkpoint, $resumed = $engine | Save-EngineCheckpoint -Path $Store -LeaveRunning -PassThru
        $resumed.State | Should -Be 'Ready'
        $resumed.ProcessId | Should -Be $engine.ProcessId

        $replica = Restore-EngineCheckpoint -Path $checkpoint.Path
        $engineRoot = $replica.ProcessTree | Where-Object NamespaceProcessId -EQ $engine.ProcessId
        $engineRoot | Should -Not -BeNullOrEmpty
        $engineRoot.ProcessId | Should -Not -Be $engine.ProcessId
        (Invoke-EngineGenerate -Engine $resumed -Prompt $Prompt -MaxTokens 16).Text | Should -Be $before.Text
        (Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 16).Text | Should -Be $before.Text
    }

    It 'gives the engine it resumes and each replica keys of their own: none answers another''s, nor those of its image' {
        $engine = Start-VllmEngine -Model tiny-16m -Name keyed
        $imageKeys = Copy-LinkKeys $engine.RunDirectory (Join-Path $TestHome 'keys-of-the-image')
        $null, $resumed = $engine | Save-EngineCheckpoint -Path $Store -LeaveRunning -PassThru
        $replicas = @(Restore-EngineCheckpoint -Path (Join-Path $Store $engine.ConfigHash) -Count 2 -Name keyed-replica)

        $engines = @($resumed) + $replicas
        $engines.Count | Should -Be 3
        @($engines.RunDirectory | ForEach-Object { Get-Content (Join-Path $_ 'client.public') } | Sort-Object -Unique).Count | Should -Be 3
        foreach ($index in 0..2) {
            $serving = $engines[$index]
            $other = $engines[($index + 1) % 3]
            (Invoke-LinkClient $serving.Endpoint hello -Keys $serving.RunDirectory).hello.backend | Should -Be 'tiny'
            (Invoke-LinkClient $serving.Endpoint hello -Keys $imageKeys -TimeoutSec 1).hello | Should -BeNullOrEmpty
            (Invoke-LinkClient $serving.Endpoint hello -Keys $other.RunDirectory -TimeoutSec 1).hello | Should -BeNullOrEmpty
        }
    }

    It 'restores three replicas at once that all answer the same' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16
        $null = $engine | Save-EngineCheckpoint -Path $Store

        # A failure shows its CRIU log excerpt (ErrorDetails), not only its message.
        $replicas = try { Get-EngineCheckpoint $Store | Restore-EngineCheckpoint -Count 3 -Name replica -ErrorAction Stop } catch { throw $_.ErrorDetails.Message }
        $replicas.Count | Should -Be 3
        $replicas.Name | Sort-Object | Should -Be 'replica-1', 'replica-2', 'replica-3'
        ($replicas.Endpoint | Sort-Object -Unique).Count | Should -Be 3
        # Each replica has a network namespace of its own (CUDA's per-PID abstract socket), yet listens on the host's loopback.
        $hostNetwork = (Get-Item /proc/self/ns/net).LinkTarget
        $replicaNetworks = foreach ($replica in $replicas) { (Get-Item "/proc/$($replica.ProcessId)/ns/net").LinkTarget }
        ($replicaNetworks | Sort-Object -Unique).Count | Should -Be 3
        $replicaNetworks | Should -Not -Contain $hostNetwork
        $replicas.Endpoint | Should -Match '^tcp://127\.0\.0\.1:\d+$'
        $answers = $replicas | Invoke-EngineGenerate -Prompt $Prompt -MaxTokens 16
        $answers.Count | Should -Be 3
        $answers.Text | Sort-Object -Unique | Should -Be $before.Text
    }

    It 'publishes one checkpoint when two saves race, and gives both callers that one' {
        $a = Start-VllmEngine -Model tiny-16m -Name racer-a
        $b = Start-VllmEngine -Model tiny-16m -Name racer-b
        $a.ConfigHash | Should -Be $b.ConfigHash
        $runs = foreach ($name in 'racer-a', 'racer-b') {
            Start-Stoppable { param($Name, $Store) Save-EngineCheckpoint -Engine $Name -Path $Store -WarningAction SilentlyContinue } @{ Name = $name; Store = $Store }
        }
        $paths = foreach ($run in $runs) {
            $run.PowerShell.EndInvoke($run.Handle).Path
            $run.PowerShell.Streams.Error | Should -BeNullOrEmpty
            Stop-Stoppable $run
        }
        $paths.Count | Should -Be 2
        ($paths | Sort-Object -Unique) | Should -Be (Join-Path $Store $a.ConfigHash)
        @(Get-ChildItem -Force $Store).Count | Should -Be 1
        @(Get-EngineCheckpoint $Store).Count | Should -Be 1
    }

    It 'starts cold and saves, then restores, with -CheckpointStore' {
        $first = Start-VllmEngine -Model tiny-16m -CheckpointStore $Store -Name auto-1
        $first.StartedFrom | Should -Be 'Cold'
        $first.State | Should -Be 'Ready'
        @(Get-EngineCheckpoint $Store).Count | Should -Be 1
        $second = Start-VllmEngine -Model tiny-16m -CheckpointStore $Store -Name auto-2
        $second.StartedFrom | Should -Be 'Checkpoint'
        (Invoke-EngineGenerate -Engine $second -Prompt $Prompt -MaxTokens 8).Text |
            Should -Be (Invoke-EngineGenerate -Engine $first -Prompt $Prompt -MaxTokens 8).Text
    }

    It 'keeps caches in the image and restores with the recorded PIDs in the host PID namespace (the KV-in-image baseline)' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name seed-style
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16
        $checkpoint, $resumed = $engine | Save-EngineCheckpoint -Path $Store -KeepCaches -CudaThrottleLimit 1 -LeaveRunning -PassThru
        $checkpoint.Manifest.CachesKept | Should -BeTrue

        # While the original runs, its PIDs are taken: refused at once, with the PIDs named.
        $err = { $checkpoint | Restore-EngineCheckpoint -HostPidNamespace -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CriuRestoreFailed,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        "$err" | Should -Match "PIDs are taken on this host: $($engine.ProcessId) "
        Get-ChildItem (Join-Path $TestHome 'replicas') | Should -BeNullOrEmpty
        $resumed | Stop-VllmEngine

        $err = { $checkpoint | Restore-EngineCheckpoint -HostPidNamespace -Count 2 -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'ConflictingParameters,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'

        $restored = $checkpoint | Restore-EngineCheckpoint -HostPidNamespace -CudaThrottleLimit 1
        $restored.StartupTime.Keys | Should -Contain 'criu-restore'
        foreach ($process in $engine.ProcessTree) {
            $restored.ProcessTree.ProcessId | Should -Contain $process.ProcessId
            (Get-Item "/proc/$($process.ProcessId)/ns/pid").LinkTarget | Should -Be (Get-Item /proc/self/ns/pid).LinkTarget
        }
        (Invoke-EngineGenerate -Engine $restored -Prompt $Prompt -MaxTokens 16).Text | Should -Be $before.Text
    }

    It 'lists checkpoints as compatible with this host and removes them' {
        $null = Start-VllmEngine -Model tiny-4m | Save-EngineCheckpoint -Path $Store
        $checkpoint = Get-EngineCheckpoint -Path $Store
        $checkpoint.Compatible | Should -BeTrue
        $checkpoint.Backend | Should -Be 'tiny'
        $checkpoint.SizeBytes | Should -BeGreaterThan 1MB
        $checkpoint | Remove-EngineCheckpoint -WhatIf
        Test-Path $checkpoint.Path | Should -BeTrue
        $checkpoint | Remove-EngineCheckpoint -Confirm:$false
        Test-Path $checkpoint.Path | Should -BeFalse
    }
}

Describe 'Checkpoint faults' {
    BeforeAll {
        $script:Saved = Start-VllmEngine -Model tiny-16m -Name fault-source | Save-EngineCheckpoint -Path $Store
    }

    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'refuses a truncated image before CRIU sees it' {
        $copy = Join-Path $TestHome 'truncated'
        Copy-Item -Recurse $Saved.Path $copy
        $pages = Get-ChildItem (Join-Path $copy 'images') -Filter 'pages-*.img' | Sort-Object Length -Descending | Select-Object -First 1
        $stream = [IO.File]::Open($pages.FullName, 'Open'); $stream.SetLength([math]::Floor($pages.Length / 2)); $stream.Dispose()
        $err = { Restore-EngineCheckpoint -Path $copy -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CheckpointCorrupt,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        "$err" | Should -Match ([regex]::Escape($pages.Name))
        Get-ChildItem (Join-Path $TestHome 'replicas') -ErrorAction Ignore | Should -BeNullOrEmpty
        Remove-Item -Recurse -Force $copy
    }

    It 'reports a damaged image that -SkipVerify lets through with the CRIU log excerpt and leaves nothing behind' {
        $copy = Join-Path $TestHome 'damaged'
        Copy-Item -Recurse $Saved.Path $copy
        $core = Get-ChildItem (Join-Path $copy 'images') -Filter 'core-*.img' | Select-Object -First 1
        $bytes = [IO.File]::ReadAllBytes($core.FullName)
        for ($i = 0; $i -lt 16; $i++) { $bytes[$i] = 0xff }
        [IO.File]::WriteAllBytes($core.FullName, $bytes)
        $err = { Restore-EngineCheckpoint -Path $copy -TimeoutSec 60 -SkipVerify -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CriuRestoreFailed,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        $err.ErrorDetails.Message | Should -Match 'restore\.log'
        $err.ErrorDetails.Message | Should -Match 'Error \('
        Get-ChildItem (Join-Path $TestHome 'replicas') -ErrorAction Ignore | Should -BeNullOrEmpty
        Remove-Item -Recurse -Force $copy
    }

    It 'refuses images that others could have written' {
        $copy = Join-Path $TestHome 'insecure'
        Copy-Item -Recurse $Saved.Path $copy
        chmod g+w (Join-Path $copy 'manifest.json')
        { Restore-EngineCheckpoint -Path $copy -ErrorAction Stop } |
            Should -Throw -ErrorId 'CheckpointInsecure,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        Remove-Item -Recurse -Force $copy
    }

    It 'publishes nothing and resumes the engine when criu is killed during the dump, or says why it could not' {
        $wrapper = New-CriuWrapper $TestHome 'criu-killed-in-dump' @"
if [ "`$1" = dump ]; then "$RealCriu" "`$@" & p=`$!; sleep 0.1; kill -9 `$p; wait `$p; exit 137; fi
exec "$RealCriu" "`$@"
"@
        $engine = Start-VllmEngine -Model tiny-64m -Name interrupted
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 12
        $other = Join-Path $TestHome 'other-store'
        $err = { $engine | Save-EngineCheckpoint -Path $other -CriuPath $wrapper -ErrorAction Stop -WarningVariable rollback } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CriuDumpFailed,CriuCheckpoint.Commands.SaveEngineCheckpointCommand'
        $err.ErrorDetails.Message | Should -Match 'dump\.log'
        @(Get-ChildItem -Force $other).Count | Should -Be 0
        # criu killed while its parasite code runs inside a process leaves that process to die of SIGTRAP: the engine
        # cannot be resumed then, and the save says so; otherwise it serves again as before.
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while (($now = Get-VllmEngine -Name interrupted).State -eq 'Prepared' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        if ($now.State -eq 'Ready') {
            (Invoke-EngineGenerate -Engine $now -Prompt $Prompt -MaxTokens 12).Text | Should -Be $before.Text
        }
        else {
            "$rollback" | Should -Match 'Rolling back \(resume the engine\) failed'
            $now.State | Should -Be 'Failed'
            $now.FailureReason | Should -Match 'exited with code'
        }
    }

    It 'resumes the engine and publishes nothing when the save is stopped (Ctrl+C)' {
        # A dump that takes a while, so Ctrl+C lands while the engine is prepared and criu runs.
        $slow = New-CriuWrapper $TestHome 'criu-slow-dump' "if [ `"`$1`" = dump ]; then sleep 30; fi; exec `"$RealCriu`" `"`$@`""
        $null = Start-VllmEngine -Model tiny-16m -Name stopped-save
        $other = Join-Path $TestHome 'ctrl-c-store'
        $run = Start-Stoppable { param($Store, $Criu) Save-EngineCheckpoint -Engine stopped-save -Path $Store -CriuPath $Criu } @{ Store = $other; Criu = $slow }
        $deadline = [DateTime]::UtcNow.AddSeconds(20)
        do { Start-Sleep -Milliseconds 50 } until ((Get-VllmEngine -Name stopped-save).State -eq 'Prepared' -or [DateTime]::UtcNow -gt $deadline)
        (Get-VllmEngine -Name stopped-save).State | Should -Be 'Prepared'
        $watch = [Diagnostics.Stopwatch]::StartNew()
        Stop-Stoppable $run
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 20
        $now = Get-VllmEngine -Name stopped-save
        $now.State | Should -Be 'Ready'
        (Invoke-EngineGenerate -Engine $now -Prompt $Prompt -MaxTokens 4).CompletionTokens | Should -BeGreaterThan 0
        Get-ChildItem -Force $other -ErrorAction Ignore | Should -BeNullOrEmpty
    }

    It 'says clearly when criu is missing' {
        $engine = Start-VllmEngine -Model tiny-4m
        $err = { $engine | Save-EngineCheckpoint -Path $Store -CriuPath /nonexistent/criu -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CriuNotFound,CriuCheckpoint.Commands.SaveEngineCheckpointCommand'
        $err.CategoryInfo.Category | Should -Be 'NotInstalled'
        (Get-VllmEngine -Id $engine.Id).State | Should -Be 'Ready'
    }

    It 'says clearly when criu is too old for this kernel' {
        $old = New-CriuWrapper $TestHome 'criu-3.17' 'echo "Version: 3.17"'
        $err = { Restore-EngineCheckpoint -Path $Saved.Path -CriuPath $old -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CriuTooOld,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        "$err" | Should -Match '3\.17'
        (Test-EngineCheckpointSupport -CriuPath $old).Problems | Should -Match '3\.17'
        Test-EngineCheckpointSupport -CriuPath $old -Quiet | Should -BeFalse
    }

    It 'reports this host as supported with the real criu' {
        $report = Test-EngineCheckpointSupport
        $report.Supported | Should -BeTrue
        $report.CriuVersion | Should -Match '^4\.'
        $report.CriuCheckPassed | Should -BeTrue
        $mode = (Get-Content /sys/kernel/mm/transparent_hugepage/enabled) -replace '.*\[(\w+)\].*', '$1'
        $report.TransparentHugePages | Should -Be $mode
        if ($mode -ne 'always') { $report.Advice | Should -Match 'huge pages' } else { $report.Advice | Should -BeNullOrEmpty }
    }
}
