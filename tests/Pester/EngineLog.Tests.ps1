# Get-EngineLog on real engines: the whole log, its last lines, following it (stopped by Ctrl+C, or ended by the
# engine), and the log of a restored engine.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Engine = Start-VllmEngine -Model tiny-16m -Name log-engine -TimeoutSec 120

    # Get-EngineLog -Wait in a runspace of its own, its lines collected as they come, so a test can read them while it
    # runs and press Ctrl+C (PowerShell.Stop). Dispose with Stop-Stoppable.
    function Start-Following([string] $Name) {
        $state = [initialsessionstate]::CreateDefault2()
        $state.ImportPSModule($ModuleManifest)
        $runspace = [runspacefactory]::CreateRunspace($state)
        $runspace.Open()
        $ps = [powershell]::Create($runspace)
        $null = $ps.AddCommand('Get-EngineLog').AddParameter('Engine', $Name).AddParameter('Tail', 0).AddParameter('Wait')
        # No pipeline input: the input collection is complete, or the cmdlet would wait for some.
        $in = [System.Management.Automation.PSDataCollection[psobject]]::new()
        $in.Complete()
        $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
        $handle = $ps.BeginInvoke($in, $output)
        [pscustomobject]@{ PowerShell = $ps; Runspace = $runspace; Handle = $handle; Output = $output }
    }

    # The lines followed so far, read by index: enumerating a collection still being written waits for its end.
    function Get-Followed($Run) {
        for ($i = 0; $i -lt $Run.Output.Count; $i++) { $Run.Output[$i] }
    }

    function Wait-Until([scriptblock] $Condition, [double] $Seconds = 30) {
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while (-not (& $Condition) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
        & $Condition
    }
}

AfterAll {
    if ($Engine) { $Engine | Stop-VllmEngine -ErrorAction Ignore }
    Remove-TestHome $TestHome
}

Describe 'Get-EngineLog' {
    It 'writes every line of the engine log as strings that name their engine' {
        $lines = @(Get-EngineLog $Engine)
        $lines | Should -Be @(Get-Content -LiteralPath $Engine.LogPath)
        $lines | Where-Object { $_ -match 'ready on tcp://' } | Should -Not -BeNullOrEmpty
        $lines[0] | Should -BeOfType string
        $lines[0].EngineName | Should -Be 'log-engine'
        $lines[0].EngineId | Should -Be $Engine.Id
    }

    It 'writes the last lines with -Tail, and none with -Tail 0' {
        Get-EngineLog log-engine -Tail 3 | Should -Be @(Get-Content -LiteralPath $Engine.LogPath -Tail 3)
        Get-EngineLog log-engine -Tail 0 | Should -BeNullOrEmpty
    }

    It 'takes the engine by object, name or id, from the command line or the pipeline' {
        (@($Engine | Get-EngineLog -Tail 1))[0].EngineId | Should -Be $Engine.Id
        (@($Engine.Id | Get-EngineLog -Tail 1))[0].EngineName | Should -Be 'log-engine'
        (@(Get-EngineLog -Name 'log-*' -Tail 1))[0].EngineName | Should -Be 'log-engine'
        $err = { Get-EngineLog no-such-engine -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'EngineNotFound,CriuCheckpoint.Commands.GetEngineLogCommand'
    }

    It 'follows the lines the engine writes with -Wait, and returns at once when stopped (Ctrl+C)' {
        $run = Start-Following log-engine
        try {
            # A save that leaves the engine running makes it log its prepare and its resume while it is followed.
            Start-Sleep -Milliseconds 500
            $null = $Engine | Save-EngineCheckpoint -Path $Store -LeaveRunning
            Wait-Until { @(Get-Followed $run | Where-Object { $_ -match 'resumed on tcp://' }).Count -gt 0 } | Should -BeTrue
            @(Get-Followed $run | Where-Object { $_ -match 'prepared: no sockets open' }).Count | Should -Be 1
            (Get-Followed $run)[0].EngineName | Should -Be 'log-engine'
            $run.Handle.IsCompleted | Should -BeFalse
            $watch = [Diagnostics.Stopwatch]::StartNew()
        }
        finally {
            Stop-Stoppable $run
        }
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 2
        (Get-VllmEngine log-engine).State | Should -Be 'Ready'
    }

    It 'ends -Wait by itself when the engine exits, with the lines it wrote on its way out' {
        $short = Start-VllmEngine -Model tiny-4m -Name short-lived -TimeoutSec 120
        $run = Start-Following short-lived
        try {
            Start-Sleep -Milliseconds 500
            $short | Stop-VllmEngine
            Wait-Until { $run.Handle.IsCompleted } -Seconds 10 | Should -BeTrue
            @(Get-Followed $run | Where-Object { $_ -match 'exiting with code 0' }).Count | Should -Be 1
        }
        finally {
            Stop-Stoppable $run
        }
    }

    It 'reads a restored engine''s log: the saved engine''s lines, then its own' {
        $replica = Get-EngineCheckpoint $Store | Restore-EngineCheckpoint -Name log-replica
        try {
            $lines = @(Get-EngineLog $replica)
            $ready = @($lines | Select-String 'ready on tcp://' | ForEach-Object LineNumber)
            $resumed = @($lines | Select-String 'resumed on tcp://' | ForEach-Object LineNumber)
            $ready.Count | Should -Be 1
            $resumed.Count | Should -Be 1
            $resumed[0] | Should -BeGreaterThan $ready[0]
            $lines[0].EngineName | Should -Be 'log-replica'
        }
        finally {
            $replica | Stop-VllmEngine
        }
    }
}
