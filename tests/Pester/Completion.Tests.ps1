# Tab completion of Start-VllmEngine's -Backend and -Model: the names come from the engine host of the Python the
# command would run (python -m engine_host --describe-backends), as the user sees them through TabExpansion2.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    function Get-Completion([string] $Line) {
        # Through ForEach-Object: under strict mode a property of an empty collection is an error, not $null.
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
}
