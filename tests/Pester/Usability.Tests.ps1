# What a new user meets first: the engine's Python found without being named, the model presets listed, one timeout
# name on every cmdlet that waits, progress that says what is happening, and -Debug showing every command that runs.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'

    # Runs a script in a runspace of its own and returns its output with the progress records it wrote.
    function Invoke-Recorded([scriptblock] $Script, [hashtable] $Parameters = @{}) {
        $state = [initialsessionstate]::CreateDefault2()
        $state.ImportPSModule($ModuleManifest)
        $runspace = [runspacefactory]::CreateRunspace($state)
        $runspace.Open()
        try {
            $ps = [powershell]::Create($runspace)
            $output = $ps.AddScript($Script.ToString()).AddParameters($Parameters).Invoke()
            $ps.Streams.Error | ForEach-Object { throw $_ }
            [pscustomobject]@{ Output = $output; Progress = @($ps.Streams.Progress | Where-Object RecordType -NE Completed) }
        }
        finally {
            $runspace.Dispose()
        }
    }
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'Finding the engine''s Python' {
    BeforeAll {
        # A python3 first on PATH that lacks the engine's packages, as pyenv's or a bare virtual environment's does.
        $script:BareBin = Join-Path $TestHome 'bare-venv/bin'
        New-Item -ItemType Directory $BareBin | Out-Null
        $script:BarePython = Join-Path $BareBin 'python3'
        Set-Content -LiteralPath $BarePython "#!/bin/sh`nexec /usr/bin/python3 -S `"`$@`"`n"
        chmod +x $BarePython
        $script:SavedPath = $env:PATH
        $script:SavedPython = $env:CRIUCHECKPOINT_PYTHON
    }

    AfterEach {
        $env:PATH = $SavedPath
        if ($SavedPython) { $env:CRIUCHECKPOINT_PYTHON = $SavedPython } else { Remove-Item Env:CRIUCHECKPOINT_PYTHON -ErrorAction Ignore }
    }

    It 'passes over a python3 first on PATH that lacks the packages, with no CRIUCHECKPOINT_PYTHON set' {
        Remove-Item Env:CRIUCHECKPOINT_PYTHON -ErrorAction Ignore
        $env:PATH = "$BareBin$([IO.Path]::PathSeparator)$SavedPath"
        $streams = Start-VllmEngine -Model tiny-4m -Name found-python -Verbose 4>&1
        $engine = $streams | Where-Object { $_ -is [CriuCheckpoint.Engine.EngineInfo] }
        try {
            $engine.State | Should -Be 'Ready'
            $interpreter = (Get-Content -Raw "/proc/$($engine.ProcessId)/cmdline").Split([char]0)[0]
            $interpreter | Should -Not -Be $BarePython
            & $interpreter -c 'import zmq, msgpack, numpy'
            $LASTEXITCODE | Should -Be 0
            "$($streams | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] })" |
                Should -Match ([regex]::Escape("$BarePython (PATH) cannot import zmq, msgpack, numpy"))
        }
        finally {
            $engine | Stop-VllmEngine
        }
    }

    It 'names what the interpreter lacked, -PythonPath and the variable, when the one named cannot run the engine' {
        $err = { Start-VllmEngine -Model tiny-4m -PythonPath $BarePython -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'PythonPackageMissing,CriuCheckpoint.Commands.StartVllmEngineCommand'
        "$err" | Should -Match ([regex]::Escape("$BarePython (-PythonPath) cannot import zmq, msgpack, numpy"))
        "$err" | Should -Match '-PythonPath'
        "$err" | Should -Match 'CRIUCHECKPOINT_PYTHON'
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    }
}

Describe 'Get-EngineModel' {
    It 'lists the presets of every backend with their size, the default and whether they run here' {
        $models = Get-EngineModel
        $models.Name | Should -Contain 'tiny-256m'
        $models.Name | Should -Contain 'llama-1b'
        $tiny = $models | Where-Object Name -EQ 'tiny-256m'
        $tiny.Backend | Should -Be 'tiny'
        $tiny.IsDefault | Should -BeTrue
        $tiny.Available | Should -BeTrue
        $tiny.Parameters | Should -BeGreaterThan 60e6
        $tiny.Description | Should -Not -BeNullOrEmpty
        @($models | Where-Object IsDefault).Count | Should -Be 2
    }

    It 'shows them as a table that fits 80 columns' {
        $table = Get-EngineModel | Format-Table | Out-String -Width 80
        $table | Should -Match 'Backend\s+Name\s+Default\s+Parameters\s+Description'
        $table | Should -Match 'tiny-256m\s+yes\s+64\.1 M'
        $table | Should -Not -Match '…'
    }

    It 'filters by backend (auto: the one Start-VllmEngine would choose) and by name with wildcards' {
        @(Get-EngineModel -Backend tiny).Backend | Select-Object -Unique | Should -Be 'tiny'
        @(Get-EngineModel -Backend auto | Select-Object -ExpandProperty Backend -Unique).Count | Should -Be 1
        (Get-EngineModel 'tiny-*').Name | Should -Be 'tiny-256m', 'tiny-64m', 'tiny-16m', 'tiny-4m'
        Get-EngineModel 'none-*' | Should -BeNullOrEmpty
    }

    It 'writes ModelNotFound for a name no backend has, and UnknownBackend for a backend it does not know' {
        $err = { Get-EngineModel tiny-9000g -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'ModelNotFound,CriuCheckpoint.Commands.GetEngineModelCommand'
        $err = { Get-EngineModel -Backend llamacpp -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'UnknownBackend,CriuCheckpoint.Commands.GetEngineModelCommand'
    }
}

Describe 'One timeout name' {
    It '<_> takes -TimeoutSec' -ForEach 'Start-VllmEngine', 'Stop-VllmEngine', 'Resume-VllmEngine', 'Get-VllmEngine',
        'Invoke-EngineGenerate', 'Measure-EngineLink', 'Save-EngineCheckpoint', 'Restore-EngineCheckpoint' {
        (Get-Command $_).Parameters.Keys | Should -Contain 'TimeoutSec'
    }

    It 'keeps the old names as aliases where they mean the same: <Command> -<Alias>' -ForEach @(
        @{ Command = 'Start-VllmEngine'; Alias = 'ReadyTimeout' }
        @{ Command = 'Stop-VllmEngine'; Alias = 'GracePeriod' }
    ) {
        (Get-Command $Command).Parameters['TimeoutSec'].Aliases | Should -Contain $Alias
    }

    It 'keeps -DrainTimeout apart from -TimeoutSec on Save-EngineCheckpoint: another wait' {
        $parameters = (Get-Command Save-EngineCheckpoint).Parameters
        $parameters['TimeoutSec'].Aliases | Should -Not -Contain 'DrainTimeout'
        $parameters.Keys | Should -Contain 'DrainTimeout'
    }

    It 'stops an engine that is not ready within -TimeoutSec, and names the parameter' {
        $err = { Start-VllmEngine -Model tiny-256m -TimeoutSec 1 -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'EngineStartupTimeout,CriuCheckpoint.Commands.StartVllmEngineCommand'
        "$err" | Should -Match '-TimeoutSec'
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    }

    It 'stops an engine with the old name -GracePeriod' {
        $engine = Start-VllmEngine -Model tiny-4m -Name grace
        $engine | Stop-VllmEngine -GracePeriod 0
        Get-VllmEngine grace -ErrorAction Ignore | Should -BeNullOrEmpty
        Test-ProcessAlive $engine.ProcessId | Should -BeFalse
    }

    It 'kills a criu dump that runs past Save-EngineCheckpoint -TimeoutSec, and the engine serves on' {
        $slow = New-CriuWrapper $TestHome 'criu-slow-dump' "if [ `"`$1`" = dump ]; then sleep 30; fi; exec `"$RealCriu`" `"`$@`""
        $engine = Start-VllmEngine -Model tiny-4m -Name slow-dump
        try {
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $err = { $engine | Save-EngineCheckpoint -Path (Join-Path $TestHome 'slow-store') -CriuPath $slow -TimeoutSec 1 -ErrorAction Stop } |
                Should -Throw -PassThru
            $watch.Elapsed.TotalSeconds | Should -BeLessThan 20
            $err.FullyQualifiedErrorId | Should -Be 'CriuDumpFailed,CriuCheckpoint.Commands.SaveEngineCheckpointCommand'
            $err.CategoryInfo.Category | Should -Be 'OperationTimeout'
            "$err" | Should -Match '-TimeoutSec'
            (Get-VllmEngine slow-dump).State | Should -Be 'Ready'
        }
        finally {
            $engine | Stop-VllmEngine
        }
    }
}

Describe 'Progress and -Debug' {
    BeforeAll {
        # criu that lingers a second after its dump and before its restore, so the progress sampled every 250 ms shows.
        $script:LingeringCriu = New-CriuWrapper $TestHome 'criu-lingering' @"
if [ "`$1" = dump ]; then "$RealCriu" "`$@"; rc=`$?; sleep 1; exit `$rc; fi
if [ "`$1" = restore ]; then sleep 1; fi
exec "$RealCriu" "`$@"
"@
    }

    It 'names the engine''s start-up phases, not its log lines' {
        $run = Invoke-Recorded { $engine = Start-VllmEngine -Model tiny-256m -Workers 2 -Name phases; $engine | Stop-VllmEngine }
        $statuses = $run.Progress.StatusDescription
        $phases = '^(Starting the engine host|Planning the tiny engine|Starting 2 core processes|Loading tiny-256m|Warming up|Opening the encrypted link)'
        @($statuses | Where-Object { $_ -match $phases } | Select-Object -Unique).Count | Should -BeGreaterOrEqual 2
        $statuses | Where-Object { $_ -match '^\d{4}-\d\d-\d\dT' } | Should -BeNullOrEmpty
    }

    It 'shows the bytes criu has written and read, one bar per replica under the restore''s' {
        $run = Invoke-Recorded {
            param($Store, $Criu)
            $engine = Start-VllmEngine -Model tiny-16m -Name progress
            $checkpoint = $engine | Save-EngineCheckpoint -Path $Store -CriuPath $Criu
            $replicas = $checkpoint | Restore-EngineCheckpoint -Count 2 -CriuPath $Criu
            $replicas | Stop-VllmEngine
        } @{ Store = Join-Path $TestHome 'progress-store'; Criu = $LingeringCriu }

        $dump = @($run.Progress | Where-Object StatusDescription -Match '^criu dump: \S+ [KMG]iB of \S+ [KMG]iB written')
        $dump.Count | Should -BeGreaterThan 0
        $dump.Activity | Should -Match '^Saving engine progress to '
        $reads = @($run.Progress | Where-Object StatusDescription -Match '^criu restore: \S+ [KMG]iB of \S+ [KMG]iB read')
        @($reads.Activity | Select-Object -Unique).Count | Should -Be 2
        @($reads.ActivityId | Select-Object -Unique).Count | Should -Be 2
        $parent = $run.Progress | Where-Object Activity -Like 'Restoring from *' | Select-Object -First 1
        $reads.ParentActivityId | Select-Object -Unique | Should -Be $parent.ActivityId
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    }

    It 'writes every command line it runs with -Debug, criu''s among them, without asking' {
        $engine = Start-VllmEngine -Model tiny-16m -Name debugged
        try {
            $store = Join-Path $TestHome 'debug-store'
            $records = $engine | Save-EngineCheckpoint -Path $store -LeaveRunning -Debug 5>&1
            $debug = @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Message
            $debug | Should -Contain "$RealCriu --version"
            @($debug | Where-Object { $_ -like "$RealCriu dump -t $($engine.ProcessId) -D $store/.staging-*" }).Count | Should -Be 1
            $replica = Get-EngineCheckpoint $store | Restore-EngineCheckpoint -Debug 5>&1
            $restore = @($replica | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Message
            @($restore | Where-Object { $_ -like 'unshare --pid *' -and $_ -like "* $RealCriu restore -D *" }).Count | Should -Be 1
        }
        finally {
            $engine | Stop-VllmEngine
            $replica | Where-Object { $_ -is [CriuCheckpoint.Engine.EngineInfo] } | Stop-VllmEngine
        }
    }
}
