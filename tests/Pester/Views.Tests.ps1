# What a user sees and exports: real objects of a real engine (started, generated from, saved, restored) rendered
# at 80 columns, listed, and written as JSON and CSV; and objects that crossed runspaces keeping their properties.

BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '../../out/CriuCheckpoint/CriuCheckpoint.psd1') -Force
    $version = $PSVersionTable.PSVersion
    $script:Tables = foreach ($type in (Get-FormatData -TypeName 'CriuCheckpoint.*' -PowerShellVersion $version)) {
        foreach ($view in $type.FormatViewDefinition | Where-Object { $_.Control -is [System.Management.Automation.TableControl] }) {
            @{ Type = $type.TypeNames[0]; Headers = @($view.Control.Headers) }
        }
    }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }

    # A table as its columns: the view's own widths cut each row into cells. Every line must fit 80 columns with the
    # last one free, and each object must be exactly one row: a wrapped cell would add lines.
    function Get-TableCells([object[]] $InputObject) {
        $lines = @(($InputObject | Out-String -Width 80) -split "`r?`n" | ForEach-Object TrimEnd | Where-Object { $_ })
        $headers = @((Get-FormatData -TypeName $InputObject[0].GetType().FullName -PowerShellVersion $PSVersionTable.PSVersion).FormatViewDefinition |
                Where-Object { $_.Control -is [System.Management.Automation.TableControl] } | Select-Object -First 1).Control.Headers
        foreach ($line in $lines) { $line.Length | Should -BeLessOrEqual 79 -Because "'$line' must fit 80 columns" }
        $lines.Count | Should -Be ($InputObject.Count + 2) -Because "each object is one row under the header and its rule:`n$($lines -join "`n")"
        @($lines[0].Trim() -split '\s+') | Should -Be @($headers.Label) -Because 'every header is whole, on one line'
        foreach ($row in $lines | Select-Object -Skip 2) {
            $start = 0
            $cells = [ordered]@{}
            foreach ($header in $headers) {
                $cells[$header.Label] = $row.PadRight(80).Substring($start, $header.Width).Trim()
                $start += $header.Width + 1
            }
            [pscustomobject]$cells
        }
    }

    $script:Engine = Start-VllmEngine -Model tiny-16m -Name 'views-engine-with-a-name-longer-than-its-column'
    $script:Results = @(Invoke-EngineGenerate -Engine $Engine -Prompt "A prompt`nof two lines, longer than its column", 'Hi' -MaxTokens 12)
    $script:Chunks = @(Invoke-EngineGenerate -Engine $Engine -Prompt 'Stream' -MaxTokens 3 -Stream)
    $script:Saved = $Engine | Save-EngineCheckpoint -Path $Store -LeaveRunning
    $script:Restored = $Saved | Restore-EngineCheckpoint -Name 'views-replica'
    $script:Listed = @(Get-VllmEngine -Engine $Engine.Id, $Restored.Id)
}

AfterAll {
    foreach ($started in $Engine, $Restored | Where-Object { $_ }) { Stop-VllmEngine -Engine $started.Id -ErrorAction Ignore }
    Remove-TestHome $TestHome
}

Describe 'The table view of <Type>' -ForEach $Tables {
    It 'fits 80 columns with every header whole' {
        ($Headers | Measure-Object Width -Sum).Sum + $Headers.Count - 1 | Should -BeLessOrEqual 79
        foreach ($header in $Headers) {
            $header.Width | Should -BeGreaterThan 0 -Because "$($header.Label) needs an explicit width"
            $header.Label.Length | Should -BeLessOrEqual $header.Width -Because "$($header.Label) must not be cut"
        }
    }
}

Describe 'Tables at 80 columns' {
    It 'lists engines, cold and restored, one row each with their startup in seconds to 0.01' {
        $rows = @(Get-TableCells $Listed)

        $rows.Name | Should -Be 'views-engine-wi…', 'views-replica'
        $rows.From | Should -Be 'Cold', 'Checkpoint'
        $rows.State | Should -Be 'Ready', 'Ready'
        foreach ($row in $rows) { $row.'Startup(s)' | Should -Match '^\d+\.\d\d$' }
    }

    It 'shows generations one line each, TTFT and tokens per second to 0.1' {
        $rows = @(Get-TableCells $Results)

        $rows.Prompt | Should -Contain 'A prompt of…'
        foreach ($row in $rows) {
            $row.'TTFT(ms)' | Should -Match '^\d+\.\d$'
            $row.'Tok/s' | Should -Match '^\d+\.\d$'
            $row.Tokens | Should -Match '^\d+$'
        }
    }

    It 'shows streamed chunks one line each' {
        $rows = @(Get-TableCells $Chunks)

        $rows.Index | Should -Be '0', '1', '2', '3'
        $rows[-1].Finish | Should -Be 'length'
    }

    It 'shows a checkpoint with its size in binary units, its save in seconds to 0.01, whether it fits and the end of its path' {
        $rows = @(Get-TableCells @(Get-EngineCheckpoint -Path $Store))

        $rows[0].Size | Should -Match '^\d+\.\d (KiB|MiB|GiB)$'
        $rows[0].'Save(s)' | Should -Match '^\d+\.\d\d$'
        $rows[0].Compatible | Should -Be 'True'
        $rows[0].Created | Should -Match '^\d{4}-\d\d-\d\d \d\d:\d\d$'
        $rows[0].Path | Should -Match "(^|…/)$($Saved.ConfigHash)$"
    }

    It 'shows a verification, link round trips and a process tree' {
        (Get-TableCells @(Test-EngineCheckpoint -Path $Saved.Path))[0].'Verify(s)' | Should -Match '^\d+\.\d\d$'
        $link = (Get-TableCells @(Measure-EngineLink -Engine $Engine -Count 5))[0]
        foreach ($column in 'Min(ms)', 'P50(ms)', 'P99(ms)', 'Max(ms)') { $link.$column | Should -Match '^\d+\.\d{3}$' }
        (Get-TableCells $Engine.ProcessTree).PID | Should -Be @($Engine.ProcessIds | ForEach-Object { "$_" })
    }

    It 'shows a GPU process and a compatibility issue with long values cut to their columns' {
        $gpu = [CriuCheckpoint.Gpu.GpuProcess]@{
            ProcessId = 4242; Name = 'python3'; GpuIndex = 0; GpuMemoryBytes = 15GB; CudaState = 'Checkpointed'; EngineName = 'x' * 40
        }
        $issue = [CriuCheckpoint.Checkpoint.CompatibilityIssue]::new('File /usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04', '123456789 bytes', 'missing')

        $gpuRow = (Get-TableCells $gpu)[0]
        $gpuRow.Memory | Should -Be '15.0 GiB'
        $gpuRow.Owner | Should -Be (('x' * 26) + '…')
        $holderProcess = [CriuCheckpoint.Gpu.GpuProcess]@{ ProcessId = 4343; Name = 'weight-holder'; GpuIndex = 0; GpuMemoryBytes = 16GB; WeightHolderName = 'llama-8b' }
        (Get-TableCells $holderProcess)[0].Owner | Should -Be 'holder llama-8b'
        $holder = [CriuCheckpoint.Gpu.WeightHolder]@{ Name = 'llama-8b'; State = 'Ready'; GpuIndex = 1; WeightBytes = 16061112320; Model = '/var/tmp/models/meta-llama-3.1-8b-instruct'; ProcessId = 4343 }
        $holderRow = (Get-TableCells $holder)[0]
        $holderRow.Weights | Should -Be '15.0 GiB'
        $holderRow.Model | Should -BeLike '…*llama-3.1-8b-instruct'
        (Get-TableCells $issue)[0].Property | Should -Be 'File /usr/lib/x86_6…'
    }
}

Describe 'List views' {
    It 'show an engine''s startup phases one a line and its memory in binary units' {
        $text = $Engine | Format-List | Out-String -Width 80

        $text | Should -Match '(?m)^Startup\s+: \d+\.\d\d s$'
        $text | Should -Match '(?m)^StartupPhases\s+: launch\s+\d+\.\d{3} s$'
        $text | Should -Match '(?m)^\s+hello\s+\d+\.\d{3} s$'
        $text | Should -Match '(?m)^HostMemory\s+: \d+\.\d (KiB|MiB|GiB)$'
    }

    It 'show a checkpoint''s GPU memory as a size, not as bytes mislabelled' {
        $text = $Saved | Format-List | Out-String -Width 80

        $text | Should -Match '(?m)^GpuMemory\s+: 0 B$'
        $text | Should -Match '(?m)^SavePhases\s+: preflight\s+\d+\.\d{3} s$'
    }
}

Describe 'Properties' {
    It 'fills StartupTime in Get-VllmEngine of another session, for a cold engine and a replica' {
        $manifest = $ModuleManifest
        $json = Invoke-ChildPwsh "Import-Module '$manifest'; Get-VllmEngine -Engine $($Engine.Id), $($Restored.Id) | ConvertTo-Json -Depth 3"
        $engines = @($json | ConvertFrom-Json)
        $cold = $engines | Where-Object Id -EQ $Engine.Id
        $replica = $engines | Where-Object Id -EQ $Restored.Id

        $cold.StartupSeconds | Should -BeGreaterThan 0
        @($cold.StartupTime.PSObject.Properties.Name) | Should -Contain 'launch'
        $replica.StartupSeconds | Should -BeGreaterThan 0
        @($replica.StartupTime.PSObject.Properties.Name) | Should -Contain 'criu-restore'
    }

    It 'compares every checkpoint a cmdlet writes with this host: save, get and import' {
        $archive = Join-Path $TestHome 'views.tar'
        $null = Export-EngineCheckpoint -Path $Saved.Path -DestinationPath $archive
        $imported = Import-EngineCheckpoint -Path $archive -Store (Join-Path $TestHome 'other-store')

        $Saved.Compatible | Should -BeTrue
        @($Saved | Where-Object Compatible) | Should -HaveCount 1
        (Get-EngineCheckpoint -Path $Store).Compatible | Should -BeTrue
        $imported.Compatible | Should -BeTrue
    }

    It 'keeps TokensPerSecond and EngineName on results made in a thread job and read in a -Parallel block' {
        $manifest = $ModuleManifest
        $id = $Engine.Id
        $fromJob = Start-ThreadJob { Import-Module $using:manifest; Invoke-EngineGenerate -Engine $using:id -Prompt 'job' -MaxTokens 4 } |
            Receive-Job -Wait -AutoRemoveJob
        $inParallel = $Results[0] | ForEach-Object -Parallel { [pscustomobject]@{ Rate = $_.TokensPerSecond; Name = $_.EngineName; Pids = $using:Engine.ProcessIds } }

        $fromJob.TokensPerSecond | Should -BeGreaterThan 0
        $fromJob.EngineName | Should -Be $Engine.Name
        $inParallel.Rate | Should -Be $Results[0].TokensPerSecond
        $inParallel.Name | Should -Be $Engine.Name
        $inParallel.Pids | Should -Be $Engine.ProcessIds
    }
}

Describe 'Export' {
    It 'leaves the registry record out of Format-List *, CSV and JSON' {
        ($Engine | Format-List * | Out-String) | Should -Not -Match '(?m)^Record\b'
        ($Engine | ConvertTo-Csv)[0] | Should -Not -Match '"Record"'
        ($Engine | ConvertTo-Json -Depth 4) | Should -Not -Match '"Record"'
    }

    It 'writes states by name and durations as seconds in JSON' {
        $json = $Listed | ConvertTo-Json -Depth 4
        $parsed = @($json | ConvertFrom-Json)

        $json | Should -Not -Match '"Ticks"'
        $parsed.State | Should -Be 'Ready', 'Ready'
        $parsed.StartedFrom | Should -Be 'Cold', 'Checkpoint'
        $parsed[1].StartupTime.'criu-restore' | Should -BeOfType [double]
        (($Results[0] | ConvertTo-Json -Depth 4) | ConvertFrom-Json).TimeToFirstTokenSeconds | Should -BeGreaterThan 0
        (($Saved | ConvertTo-Json -Depth 6) | ConvertFrom-Json).Timings.'criu-dump' | Should -BeGreaterThan 0
    }

    It 'writes states by name and phases as text in CSV' {
        $row = $Listed[0] | ConvertTo-Csv | ConvertFrom-Csv

        $row.State | Should -Be 'Ready'
        $row.StartedFrom | Should -Be 'Cold'
        $row.StartupTime | Should -Match '^\d+\.\d{3} s \(launch \d+\.\d{3}, '
    }
}
