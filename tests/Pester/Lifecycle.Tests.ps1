# An engine is its whole tree wherever a kill lands; Stop reaps whatever is left; timeouts bound the whole operation.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }
    $script:Saved = Start-VllmEngine -Model tiny-16m -Workers 2 -Name lifecycle | Save-EngineCheckpoint -Path $Store

    function Get-ChildProcessId([int] $ProcessId) {
        @((Get-Content -Raw -LiteralPath "/proc/$ProcessId/task/$ProcessId/children" -ErrorAction Ignore) -split ' ' |
            Where-Object { $_ } | ForEach-Object { [int]$_ })
    }

    # The processes of a restored engine by role: unshare (the engine's ProcessId), criu (the namespace's init), the
    # frontend and one of its cores.
    function Get-ReplicaProcess($Engine) {
        $init = (Get-ChildProcessId $Engine.ProcessId)[0]
        $frontend = (Get-ChildProcessId $init)[0]
        @{ wrapper = $Engine.ProcessId; init = $init; frontend = $frontend; core = (Get-ChildProcessId $frontend)[0] }
    }

    function Wait-Gone([int[]] $ProcessIds, [double] $TimeoutSeconds) {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while (@($ProcessIds | Where-Object { Test-ProcessAlive $_ }).Count -gt 0 -and $watch.Elapsed.TotalSeconds -lt $TimeoutSeconds) {
            Start-Sleep -Milliseconds 10
        }
        $watch.Elapsed
    }

    function Wait-State([string] $Name, [string[]] $States, [double] $TimeoutSeconds) {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        do {
            $engine = Get-VllmEngine -Name $Name
            if ($engine.State -in $States) { return $engine }
            Start-Sleep -Milliseconds 50
        } while ($watch.Elapsed.TotalSeconds -lt $TimeoutSeconds)
        $engine
    }
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'A restored engine lives and dies as a whole' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
        Get-ChildItem (Join-Path $TestHome 'replicas') -ErrorAction Ignore | Should -BeNullOrEmpty
    }

    It 'records its namespace init and its frontend by host PID' {
        $replica = Restore-EngineCheckpoint -Path $Saved.Path -Name recorded
        $roles = Get-ReplicaProcess $replica
        $record = Get-Content -Raw (Join-Path $replica.RunDirectory 'engine.json') | ConvertFrom-Json
        $record.namespace_init_process_id | Should -Be $roles.init
        $record.engine_process_id | Should -Be $roles.frontend
        (Get-Content "/proc/$($roles.init)/status" | Select-String '^NSpid:').Line | Should -Match '\s1$'
    }

    It 'ends entirely within 2 s when its <Role> is killed, and says so' -ForEach @(
        @{ Role = 'wrapper' }, @{ Role = 'init' }, @{ Role = 'frontend' }, @{ Role = 'core' }
    ) {
        $replica = Restore-EngineCheckpoint -Path $Saved.Path -Name "killed-$Role"
        $roles = Get-ReplicaProcess $replica
        $all = @($roles.Values) + @(Get-ChildProcessId $roles.frontend)

        kill -9 $roles[$Role]
        $elapsed = Wait-Gone $all 10

        Write-Host "  kill of the $Role to every process gone: $($elapsed.TotalSeconds.ToString('0.000')) s"
        $elapsed.TotalSeconds | Should -BeLessThan 2
        $state = Wait-State "killed-$Role" 'Stopped', 'Failed' 5
        $state.State | Should -BeIn 'Stopped', 'Failed'
        Test-Path (Join-Path $replica.RunDirectory 'ready.json') | Should -BeFalse
    }
}

Describe 'A cold engine lives and dies as a whole' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'loses its cores within 2 s when its frontend is killed mid-work' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name cold-frontend
        $cores = Get-ChildProcessId $engine.ProcessId
        $cores.Count | Should -Be 2
        $busy = Start-Stoppable { param($Engine) Invoke-EngineGenerate -Engine $Engine -Prompt 'busy' -MaxTokens 200 } @{ Engine = $engine }
        try {
            kill -9 $engine.ProcessId
            $elapsed = Wait-Gone ($cores + $engine.ProcessId) 10
        }
        finally { Stop-Stoppable $busy }

        $elapsed.TotalSeconds | Should -BeLessThan 2
        (Wait-State cold-frontend 'Stopped', 'Failed' 5).State | Should -BeIn 'Stopped', 'Failed'
    }

    It 'fails with the reason when a core is killed' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name cold-core
        kill -9 (Get-ChildProcessId $engine.ProcessId)[1]
        $elapsed = Wait-Gone @($engine.ProcessId) 10
        $elapsed.TotalSeconds | Should -BeLessThan 2
        $failed = Wait-State cold-core 'Failed' 5
        $failed.State | Should -Be 'Failed'
        $failed.FailureReason | Should -Match 'core-1 .* exited with code -9 \(core_died\)'
    }
}

Describe 'An engine left prepared' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'serves again after Resume-VllmEngine, answering as before' {
        $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name prepared
        $before = Invoke-EngineGenerate -Engine $engine -Prompt 'Once' -MaxTokens 8
        $keysBefore = Copy-LinkKeys $engine.RunDirectory (Join-Path $TestHome 'keys-before-resume')
        # A client that asks for a checkpoint and goes away: what a killed Save-EngineCheckpoint leaves.
        (Invoke-LinkClient $engine.Endpoint prepare_checkpoint -Keys $engine.RunDirectory -TimeoutSec 30).prepare_checkpoint.state |
            Should -Be 'prepared'
        (Wait-State prepared 'Prepared' 10).State | Should -Be 'Prepared'

        $resumed = 'prepared' | Resume-VllmEngine

        $resumed.State | Should -Be 'Ready'
        (Invoke-EngineGenerate -Engine $resumed -Prompt 'Once' -MaxTokens 8).Text | Should -Be $before.Text
        # It serves with keys of its resume: the ones it had before let no one in.
        (Invoke-LinkClient $resumed.Endpoint hello -Keys $resumed.RunDirectory).hello | Should -Not -BeNullOrEmpty
        (Invoke-LinkClient $resumed.Endpoint hello -Keys $keysBefore -TimeoutSec 1).hello | Should -BeNullOrEmpty
    }

    It 'writes EngineNotRunning for an engine that has exited, and the serving one as it is' {
        $engine = Start-VllmEngine -Model tiny-16m -Name serving
        (Resume-VllmEngine -Engine $engine).State | Should -Be 'Ready'
        kill -9 $engine.ProcessId
        $null = Wait-State serving 'Stopped', 'Failed' 5
        $err = { Resume-VllmEngine -Name serving -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'EngineNotRunning,CriuCheckpoint.Commands.ResumeVllmEngineCommand'
    }
}

Describe 'Timeouts bound the whole operation' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'returns within 15 s from a restore CRIU hangs on, with -TimeoutSec 10, and leaves nothing behind' {
        # A pages image cut in half that the manifest no longer lists: no check before criu sees it, and criu hangs.
        $copy = Join-Path $TestHome 'hanging'
        Copy-Item -Recurse $Saved.Path $copy
        $pages = Get-ChildItem (Join-Path $copy 'images') -Filter 'pages-*.img' | Sort-Object Length -Descending | Select-Object -First 1
        $stream = [IO.File]::Open($pages.FullName, 'Open'); $stream.SetLength([math]::Floor($pages.Length / 2)); $stream.Dispose()
        $manifestPath = Join-Path $copy 'manifest.json'
        $manifest = Get-Content -Raw $manifestPath | ConvertFrom-Json
        $manifest.image_bytes -= ($manifest.images | Where-Object path -EQ $pages.Name).size
        $manifest.images = @($manifest.images | Where-Object path -NE $pages.Name)
        $manifest | ConvertTo-Json -Depth 20 | Set-Content $manifestPath

        $watch = [Diagnostics.Stopwatch]::StartNew()
        $err = { Restore-EngineCheckpoint -Path $copy -TimeoutSec 10 -ErrorAction Stop } | Should -Throw -PassThru
        $watch.Stop()

        Write-Host "  returned after $($watch.Elapsed.TotalSeconds.ToString('0.0')) s with $($err.FullyQualifiedErrorId)"
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 15
        $err.FullyQualifiedErrorId | Should -BeLike '*,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        Get-ChildItem (Join-Path $TestHome 'replicas') -ErrorAction Ignore | Should -BeNullOrEmpty
        Remove-Item -Recurse -Force $copy
    }
}
