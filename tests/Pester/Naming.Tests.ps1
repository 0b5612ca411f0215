# How a user names engines and checkpoints: by object, by name or id with wildcards, positionally, from the pipeline
# by value and by property name; unknown names as ordinary errors that -ErrorAction controls; checkpoints by path,
# wildcards, literal path and Get-ChildItem output. Real engines, real CRIU.

BeforeDiscovery {
    # Every cmdlet that takes engines, with what else it needs to run; none gets as far as using it.
    $script:EngineCommands = @(
        @{ Command = 'Get-VllmEngine'; Arguments = @{} }
        @{ Command = 'Stop-VllmEngine'; Arguments = @{} }
        @{ Command = 'Resume-VllmEngine'; Arguments = @{} }
        @{ Command = 'Invoke-EngineGenerate'; Arguments = @{ Prompt = 'hi' } }
        @{ Command = 'Save-EngineCheckpoint'; Arguments = @{ Path = 'no-such-store' } }
        @{ Command = 'Measure-EngineLink'; Arguments = @{ Count = 1 } }
        @{ Command = 'Get-GpuProcess'; Arguments = @{} }
    )
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }
    $script:Alpha = Start-VllmEngine -Model tiny-4m -Name naming-alpha
    $script:Beta = Start-VllmEngine -Model tiny-4m -Name naming-beta
}

AfterAll {
    Stop-Process -Id ($Alpha, $Beta).ProcessTree.ProcessId -Force -ErrorAction Ignore
    Remove-TestHome $TestHome
}

Describe 'Naming engines' {
    It 'names an engine by position, by -Name and by its exact id' {
        (Get-VllmEngine naming-alpha).Id | Should -Be $Alpha.Id
        (Get-VllmEngine -Name naming-alpha).Id | Should -Be $Alpha.Id
        (Get-VllmEngine $Alpha.Id).Name | Should -Be 'naming-alpha'
        (Measure-EngineLink naming-beta -Count 1).EngineName | Should -Be 'naming-beta'
    }

    It 'takes names from the pipeline by value, and Engine objects as themselves' {
        ('naming-beta', 'naming-alpha' | Get-VllmEngine).Name | Should -Be 'naming-beta', 'naming-alpha'
        ($Alpha, $Beta | Get-VllmEngine).Id | Should -Be $Alpha.Id, $Beta.Id
        ('naming-alpha' | Measure-EngineLink -Count 1).EngineName | Should -Be 'naming-alpha'
    }

    It 'takes an engine from the <Property> property of a piped object' -ForEach @(
        @{ Property = 'Name'; Value = 'naming-alpha' }
        @{ Property = 'EngineName'; Value = 'naming-alpha' }
        @{ Property = 'Id'; Value = $null }
        @{ Property = 'EngineId'; Value = $null }
    ) {
        $row = [pscustomobject]@{ $Property = if ($Value) { $Value } else { $Alpha.Id } }
        ($row | Get-VllmEngine).Id | Should -Be $Alpha.Id
        ($row | Measure-EngineLink -Count 1).EngineName | Should -Be 'naming-alpha'
        ($row | Invoke-EngineGenerate -Prompt 'hi' -MaxTokens 2).Engine.Id | Should -Be $Alpha.Id
    }

    It 'matches -Id patterns against ids only' {
        (Get-VllmEngine -Id "$($Alpha.Id.Substring(0, 6))*").Name | Should -Be 'naming-alpha'
        (Get-VllmEngine -Id "$($Beta.Id.Substring(0, 11))?").Name | Should -Be 'naming-beta'
        @(Get-VllmEngine -Id '*').Count | Should -Be 2
        Get-VllmEngine -Id 'naming-*' | Should -BeNullOrEmpty
        (Measure-EngineLink -Id "$($Beta.Id.Substring(0, 6))*" -Count 1).EngineName | Should -Be 'naming-beta'
    }

    It 'lists nothing and writes no error for a pattern that matches nothing, as Get-Process -Name does' {
        $Error.Clear()
        Get-VllmEngine 'no-such-*' | Should -BeNullOrEmpty
        Get-VllmEngine -Id 'ffffff?' | Should -BeNullOrEmpty
        $Error | Should -BeNullOrEmpty
    }

    It 'lists each engine once however many arguments name it' {
        (Get-VllmEngine 'naming-*', 'naming-alpha', $Alpha.Id).Name | Should -Be 'naming-alpha', 'naming-beta'
    }

    It 'completes a name with wildcard characters to a text that names it alone' {
        $bracketed = Start-VllmEngine -Model tiny-4m -Name 'naming[1]'
        $plain = Start-VllmEngine -Model tiny-4m -Name 'naming1'
        try {
            $completed = (TabExpansion2 -inputScript 'Get-VllmEngine naming[' -cursorColumn 21).CompletionMatches.CompletionText
            $completed | Should -Be "'naming``[1``]'"
            (& ([scriptblock]::Create("Get-VllmEngine $completed"))).Id | Should -Be $bracketed.Id
            (Get-VllmEngine 'naming[1]').Id | Should -Be $plain.Id
        }
        finally {
            Stop-Process -Id ($bracketed, $plain).ProcessTree.ProcessId -Force -ErrorAction Ignore
            Stop-VllmEngine -Engine $bracketed, $plain -ErrorAction Ignore
        }
    }

    Context 'an unknown engine' {
        It '<Command> -Engine leaves the EngineNotFound record in $Error and writes nothing under SilentlyContinue' -ForEach $EngineCommands {
            $Error.Clear()
            $output = & $Command -Engine no-such-engine @Arguments -ErrorAction SilentlyContinue
            $output | Should -BeNullOrEmpty
            $Error | Should -HaveCount 1
            $Error[0].FullyQualifiedErrorId | Should -Be "EngineNotFound,$((Get-Command $Command).ImplementingType.FullName)"
            "$($Error[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
            $Error[0].TargetObject | Should -Be 'no-such-engine'
        }

        It '<Command> -Id throws EngineNotFound under -ErrorAction Stop' -ForEach $EngineCommands {
            $thrown = { & $Command -Id 0123456789ab @Arguments -ErrorAction Stop } | Should -Throw -PassThru
            $thrown.FullyQualifiedErrorId | Should -Be "EngineNotFound,$((Get-Command $Command).ImplementingType.FullName)"
            "$($thrown.CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        }

        It 'is an error the caller can catch by ErrorId, not a parameter binding failure' {
            $caught = try { Invoke-EngineGenerate -Engine no-such-engine -Prompt 'hi' -ErrorAction Stop } catch { $_ }
            $caught.Exception | Should -BeOfType ([CriuCheckpoint.Core.CriuCheckpointException])
            $caught.Exception.ErrorId | Should -Be 'EngineNotFound'
        }

        It 'goes on with the other engines named' {
            $Error.Clear()
            ('no-such-engine', 'naming-beta' | Get-VllmEngine -ErrorAction SilentlyContinue).Name | Should -Be 'naming-beta'
            $Error | Should -HaveCount 1
        }
    }
}

Describe 'Naming checkpoints' {
    BeforeAll {
        $script:Store = Join-Path $TestHome 'store'
        $script:Saved = Start-VllmEngine -Model tiny-4m -Name naming-saved | Save-EngineCheckpoint -Path $Store
    }

    AfterAll {
        Get-VllmEngine 'naming-restored*' -ErrorAction Ignore | Stop-VllmEngine -ErrorAction Ignore
    }

    It 'reads the checkpoints of a store piped from Get-ChildItem' {
        $read = Get-ChildItem $Store | Get-EngineCheckpoint
        $read.Path | Should -Be $Saved.Path
        $read.Compatible | Should -BeTrue
    }

    It 'expands wildcards in -Path and takes -LiteralPath as written' {
        (Get-EngineCheckpoint -Path (Join-Path $Store '*')).Path | Should -Be $Saved.Path
        (Get-EngineCheckpoint -LiteralPath $Saved.Path).ConfigHash | Should -Be $Saved.ConfigHash
        (Test-EngineCheckpoint -Path (Join-Path $Store "$($Saved.ConfigHash.Substring(0, 4))*")).Valid | Should -BeTrue
        (Get-ChildItem $Store | Test-EngineCheckpoint).Valid | Should -BeTrue
    }

    It 'still takes EngineCheckpoint objects by value' {
        ($Saved | Get-EngineCheckpoint).Path | Should -Be $Saved.Path
        ($Saved | Test-EngineCheckpoint).Valid | Should -BeTrue
    }

    It 'writes CheckpointNotFound for a path that names nothing, and nothing for a pattern that matches nothing' {
        $Error.Clear()
        Get-EngineCheckpoint -Path (Join-Path $TestHome 'no-such-*') | Should -BeNullOrEmpty
        $Error | Should -BeNullOrEmpty
        $thrown = { Get-EngineCheckpoint -Path (Join-Path $TestHome 'no-such-store') -ErrorAction Stop } | Should -Throw -PassThru
        $thrown.FullyQualifiedErrorId | Should -Be 'CheckpointNotFound,CriuCheckpoint.Commands.GetEngineCheckpointCommand'
        Test-EngineCheckpoint -Path (Join-Path $TestHome 'no-such-store') -Quiet -ErrorAction SilentlyContinue | Should -BeFalse
    }

    It 'refuses a path of another provider' {
        $thrown = { Restore-EngineCheckpoint -Path Env:PATH -ErrorAction Stop } | Should -Throw -PassThru
        $thrown.FullyQualifiedErrorId | Should -Be 'CheckpointNotFound,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
        "$($thrown.CategoryInfo.Category)" | Should -Be 'InvalidArgument'
    }

    It 'restores the checkpoints of a store piped from Get-ChildItem' {
        $restored = Get-ChildItem $Store | Restore-EngineCheckpoint -Name naming-restored
        try {
            $restored.StartedFrom | Should -Be 'Checkpoint'
            $restored.ConfigHash | Should -Be $Saved.ConfigHash
            (Invoke-EngineGenerate -Engine $restored -Prompt 'hi' -MaxTokens 2).Text | Should -Not -BeNullOrEmpty
        }
        finally {
            $restored | Stop-VllmEngine
        }
    }

    It 'exports and imports through -Path wildcards and Get-ChildItem' {
        $archives = New-Item -ItemType Directory (Join-Path $TestHome 'archives')
        $archive = Get-ChildItem $Store | Export-EngineCheckpoint -DestinationPath $archives.FullName
        $archive.Name | Should -Be "$($Saved.ConfigHash).tar"
        (Import-EngineCheckpoint -Path (Join-Path $archives '*.tar') -Store (Join-Path $TestHome 'imported')).ConfigHash | Should -Be $Saved.ConfigHash
        ($archive | Import-EngineCheckpoint -Store (Join-Path $TestHome 'imported-by-fullname')).ConfigHash | Should -Be $Saved.ConfigHash
        (Get-ChildItem $archives | Import-EngineCheckpoint -Store (Join-Path $TestHome 'imported-by-pspath')).ConfigHash | Should -Be $Saved.ConfigHash
    }

    It 'removes the checkpoints of a store piped from Get-ChildItem, and leaves the store' {
        Get-ChildItem $Store | Remove-EngineCheckpoint -Confirm:$false
        Test-Path $Saved.Path | Should -BeFalse
        Test-Path $Store | Should -BeTrue
    }
}
