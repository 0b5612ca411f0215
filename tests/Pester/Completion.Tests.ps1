# Tab completion as the user sees it through TabExpansion2: Start-VllmEngine's -Backend and -Model from the engine
# host of the Python the command would run (python -m engine_host --describe-backends), and folders for a -Model
# path; engine names and ids from the registry; config hashes from the checkpoints of a store.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    function Get-Completion([string] $Line) {
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches | ForEach-Object CompletionText)
    }
}

Describe 'Start-VllmEngine completion' {
    It 'offers auto and every backend for -Backend' {
        Get-Completion 'Start-VllmEngine -Backend ' | Should -Be @('auto', 'vllm', 'torch', 'tiny')
    }

    It 'offers the backends that start with what is typed' {
        Get-Completion 'Start-VllmEngine -Backend t' | Should -Be @('torch', 'tiny')
    }

    It 'offers the presets of the -Backend given for -Model' {
        Get-Completion 'Start-VllmEngine -Backend tiny -Model ' | Should -Be @('tiny-256m', 'tiny-64m', 'tiny-16m', 'tiny-4m')
    }

    It 'offers every preset for -Model when no -Backend is given' {
        $offered = Get-Completion 'Start-VllmEngine -Model '
        $offered | Should -Contain 'tiny-256m'
        $offered | Should -Contain 'llama-1b'
    }

    It 'offers nothing when the -PythonPath given cannot run the engine host' {
        Get-Completion 'Start-VllmEngine -PythonPath /nonexistent/python3 -Backend ' | Should -BeNullOrEmpty
    }

    It 'offers the folders, and no files nor presets, for a -Model path being typed' {
        $models = New-Item -ItemType Directory (Join-Path ([IO.Path]::GetTempPath()) "models-$([guid]::NewGuid().ToString('N').Substring(0, 8))")
        try {
            New-Item -ItemType Directory (Join-Path $models 'llama-local'), (Join-Path $models 'llama two') | Out-Null
            New-Item -ItemType File (Join-Path $models 'llama-notes.txt') | Out-Null
            Push-Location $models
            try {
                Get-Completion 'Start-VllmEngine -Model ./ll' | Sort-Object | Should -Be ('./llama-local', "'./llama two'" | Sort-Object)
                Get-Completion "Start-VllmEngine -Model $models/llama-l" | Should -Be @("$models/llama-local")
            }
            finally {
                Pop-Location
            }
        }
        finally {
            Remove-Item -LiteralPath $models -Recurse -Force
        }
    }
}

Describe 'Naming engines and checkpoints by completion' {
    BeforeAll {
        $script:TestHome = New-TestHome
        $script:Engines = 'complete-alpha', 'complete beta' | ForEach-Object { Start-VllmEngine -Model tiny-4m -Name $_ }
        $script:Store = Join-Path $TestHome 'store'
        $script:Saved = Start-VllmEngine -Model tiny-4m -Name complete-saved | Save-EngineCheckpoint -Path $Store
    }

    AfterAll {
        Stop-Process -Id $Engines.ProcessTree.ProcessId -Force -ErrorAction Ignore
        Remove-TestHome $TestHome
    }

    It 'offers the engine names of the registry for <_>, quoted where needed' -ForEach @(
        'Get-VllmEngine ', 'Get-VllmEngine -Name ', 'Stop-VllmEngine -Engine ', 'Resume-VllmEngine ',
        'Invoke-EngineGenerate -Prompt hi -Engine ', 'Save-EngineCheckpoint -Path x -Engine ', 'Measure-EngineLink ',
        'Get-GpuProcess -Engine '
    ) {
        Get-Completion $_ | Should -Be @('complete-alpha', "'complete beta'")
    }

    It 'offers the names that match what is typed, wildcards included' {
        Get-Completion 'Stop-VllmEngine complete-a' | Should -Be @('complete-alpha')
        Get-Completion 'Stop-VllmEngine *beta' | Should -Be @("'complete beta'")
        Get-Completion "Stop-VllmEngine 'complete b" | Should -Be @("'complete beta'")
    }

    It 'offers the ids of the registry for -Id, each listed with its name' {
        $alpha = $Engines[0]
        $offered = (TabExpansion2 -inputScript 'Get-VllmEngine -Id ' -cursorColumn 19).CompletionMatches
        $offered.CompletionText | Should -Be $Engines.Id
        $offered[0].ListItemText | Should -Be "$($alpha.Id) (complete-alpha)"
        Get-Completion "Measure-EngineLink -Id $($alpha.Id.Substring(0, 6))" | Should -Be @($alpha.Id)
    }

    It 'offers the config hashes of the store given to -Path' {
        Get-Completion "Get-EngineCheckpoint -Path $Store -ConfigHash " | Should -Be @($Saved.ConfigHash)
        Get-Completion "Get-EngineCheckpoint -LiteralPath $($Saved.Path) -ConfigHash $($Saved.ConfigHash.Substring(0, 3))" | Should -Be @($Saved.ConfigHash)
        Get-Completion "Get-EngineCheckpoint -Path $Store -ConfigHash zz" | Should -BeNullOrEmpty
    }

    It 'offers the config hashes of the current folder when no -Path is given' {
        Push-Location $Store
        try {
            Get-Completion 'Get-EngineCheckpoint -ConfigHash ' | Should -Be @($Saved.ConfigHash)
        }
        finally {
            Pop-Location
        }
    }
}
