#!/usr/bin/env pwsh
<#
.SYNOPSIS
    The main job on the embedded CPU engine: start an engine, generate, stop; prints timings.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,

    [string] $Model = 'tiny-256m',

    [int] $Workers = 2
)

$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force

$prompts = 'The quick brown fox', 'Once upon a time', 'A checkpoint is', 'PowerShell pipes objects'
$engine = Start-VllmEngine -Model $Model -Workers $Workers -Name "demo-$PID"
try {
    Write-Host "`n== Cold start: $($engine.Name) ($Model, $Workers workers), PID $($engine.ProcessId), $($engine.ProcessTree.Count) processes"
    $engine.StartupTime.Phases | Format-Table @{ n = 'Phase'; e = { $_.Key } }, @{ n = 'Seconds'; e = { '{0:0.000}' -f $_.Value.TotalSeconds } } | Out-Host
    Write-Host ('Cold start total: {0:0.000} s' -f $engine.StartupTime.Total.TotalSeconds)

    Write-Host "`n== Generate ($($prompts.Count) prompts at once, greedy)"
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $results = $prompts | Invoke-EngineGenerate -Engine $engine -MaxTokens 24
    $watch.Stop()
    $results | Format-Table | Out-Host
    $tokens = ($results | Measure-Object CompletionTokens -Sum).Sum
    Write-Host ('{0} tokens in {1:0.000} s: {2:0.0} tokens/s' -f $tokens, $watch.Elapsed.TotalSeconds, ($tokens / $watch.Elapsed.TotalSeconds))
}
finally {
    $engine | Stop-VllmEngine -Verbose 4>&1 | Out-Host
}
