#!/usr/bin/env pwsh
<#
.SYNOPSIS
    The main job on the embedded CPU engine: start an engine, generate, checkpoint it, restore it into a fresh
    PID namespace, generate again (the same text), and print the timings of each step.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,

    [string] $Model = 'tiny-256m',

    [int] $Workers = 2,

    [string] $Store = (Join-Path ([IO.Path]::GetTempPath()) "criu-demo-$PID")
)

$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force

function Show-Phases([string] $Title, $Timings) {
    Write-Host "`n== $Title"
    $Timings.GetEnumerator() | Format-Table @{ n = 'Phase'; e = { $_.Key } }, @{ n = 'Seconds'; e = { '{0:0.000}' -f $_.Value }; a = 'Right' } | Out-Host
    Write-Host ('Total: {0:0.000} s' -f $Timings.TotalSeconds)
}

$prompts = 'The quick brown fox', 'Once upon a time', 'A checkpoint is', 'PowerShell pipes objects'
$engine = Start-VllmEngine -Model $Model -Workers $Workers -Name "demo-$PID"
$restored = $null
try {
    Show-Phases "Cold start: $($engine.Name) ($Model, $Workers workers), $($engine.ProcessTree.Count) processes, PID $($engine.ProcessId)" $engine.StartupTime

    Write-Host "`n== Generate ($($prompts.Count) prompts at once, greedy)"
    $before = $prompts | Invoke-EngineGenerate -Engine $engine -MaxTokens 24
    $before | Format-Table | Out-Host

    $checkpoint = $engine | Save-EngineCheckpoint -Path $Store
    Show-Phases ('Checkpoint: {0} ({1:N1} MiB; the engine ended with the dump)' -f $checkpoint.Path, ($checkpoint.SizeBytes / 1MB)) $checkpoint.Timings

    $restored = $checkpoint | Restore-EngineCheckpoint -Name "demo-$PID-restored"
    $root = $restored.ProcessTree | Where-Object NamespaceProcessId -EQ $engine.ProcessId
    Show-Phases "Restore into a fresh PID namespace: engine PID $($root.NamespaceProcessId) inside, $($root.ProcessId) on the host" $restored.StartupTime

    Write-Host "`n== Generate again on the restored engine"
    $after = $prompts | Invoke-EngineGenerate -Engine $restored -MaxTokens 24
    $after | Format-Table | Out-Host
    $same = @($before | Where-Object { $_.Text -ceq ($after | Where-Object Prompt -EQ $_.Prompt).Text }).Count
    Write-Host "$same of $($prompts.Count) completions identical to those before the checkpoint."

    Write-Host "`n== Timings"
    Write-Host ('cold start           {0,8:0.000} s' -f $engine.StartupSeconds)
    Write-Host ('checkpoint           {0,8:0.000} s' -f $checkpoint.SaveSeconds)
    Write-Host ('restore              {0,8:0.000} s   {1:0.0}x faster than the cold start' -f $restored.StartupSeconds, ($engine.StartupSeconds / $restored.StartupSeconds))
    if ($same -ne $prompts.Count) { throw 'The restored engine did not answer as the original did.' }
}
finally {
    Get-VllmEngine -Id $engine.Id, $restored.Id -ErrorAction Ignore | Stop-VllmEngine
    Remove-Item -Recurse -Force $Store -ErrorAction Ignore
}
