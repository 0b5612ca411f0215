#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Measures the tiny CPU engine in one run and prints each figure with its ratio: cold start by phase, link
    round trip, and generation throughput with 1 vs 16 prompts in flight. Writes the figures as JSON too.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,

    [string] $Model = 'tiny-256m',

    [int] $Workers = 2,

    [int] $MaxTokens = 32,

    [string] $ResultPath = (Join-Path $PSScriptRoot "../out/bench/cpu-$(Get-Date -Format yyyyMMdd-HHmmss).json")
)

$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force

function Format-Seconds([TimeSpan] $Span) { '{0,8:0.000} s' -f $Span.TotalSeconds }

$result = [ordered]@{
    date    = (Get-Date).ToUniversalTime().ToString('o')
    host    = [ordered]@{ cpu = ((Get-Content /proc/cpuinfo | Select-String '^model name' | Select-Object -First 1) -replace '.*:\s*', ''); cores = [Environment]::ProcessorCount; kernel = (uname -r) }
    engine  = [ordered]@{ backend = 'tiny'; model = $Model; workers = $Workers }
}

$engine = Start-VllmEngine -Model $Model -Workers $Workers -Name "bench-$PID"
try {
    Write-Host "`n== Cold start of $Model with $Workers workers"
    foreach ($phase in $engine.StartupTime.Phases) {
        Write-Host ('{0,-16} {1}  {2,6:P1} of cold start' -f $phase.Key, (Format-Seconds $phase.Value), ($phase.Value.TotalSeconds / $engine.StartupTime.Total.TotalSeconds))
    }
    Write-Host ('{0,-16} {1}' -f 'total', (Format-Seconds $engine.StartupTime.Total))
    $result.cold_start = [ordered]@{ total_s = $engine.StartupTime.Total.TotalSeconds; phases = [ordered]@{} }
    foreach ($phase in $engine.StartupTime.Phases) { $result.cold_start.phases[$phase.Key] = $phase.Value.TotalSeconds }

    Write-Host "`n== Link round trip (health, 500 requests)"
    $latency = Measure-EngineLink -Engine $engine -Count 500
    Write-Host ('p50 {0:0.000} ms   p99 {1:0.000} ms   p99/p50 {2:0.00}' -f $latency.Median.TotalMilliseconds, $latency.P99.TotalMilliseconds, ($latency.P99.TotalMilliseconds / $latency.Median.TotalMilliseconds))
    $result.link = [ordered]@{ count = $latency.Count; p50_ms = $latency.Median.TotalMilliseconds; p99_ms = $latency.P99.TotalMilliseconds; max_ms = $latency.Maximum.TotalMilliseconds }

    Write-Host "`n== Generation throughput, $MaxTokens tokens per prompt (greedy)"
    $null = Invoke-EngineGenerate -Engine $engine -Prompt 'warm up' -MaxTokens 4
    $throughput = [ordered]@{}
    foreach ($inFlight in 1, 16) {
        $prompts = 1..$inFlight | ForEach-Object { "Prompt number $_ of the benchmark" }
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $results = $prompts | Invoke-EngineGenerate -Engine $engine -MaxTokens $MaxTokens
        $watch.Stop()
        $tokens = ($results | Measure-Object CompletionTokens -Sum).Sum
        $throughput["$inFlight"] = [ordered]@{ tokens = $tokens; seconds = $watch.Elapsed.TotalSeconds; tokens_per_s = $tokens / $watch.Elapsed.TotalSeconds
            ttft_p50_ms = ($results.TimeToFirstToken.TotalMilliseconds | Sort-Object)[[int][math]::Floor(($results.Count - 1) / 2)] }
        Write-Host ('{0,2} in flight: {1,5} tokens in {2}  {3,8:0.0} tokens/s' -f $inFlight, $tokens, (Format-Seconds $watch.Elapsed), $throughput["$inFlight"].tokens_per_s)
    }
    $speedup = $throughput['16'].tokens_per_s / $throughput['1'].tokens_per_s
    Write-Host ('batching speedup (16 vs 1 in flight): {0:0.00}x' -f $speedup)
    $result.generate = $throughput
    $result.generate.batching_speedup = $speedup
}
finally {
    $engine | Stop-VllmEngine
}

New-Item -ItemType Directory -Force (Split-Path $ResultPath) | Out-Null
$result | ConvertTo-Json -Depth 6 | Set-Content $ResultPath
Write-Host "`nresults: $(Resolve-Path $ResultPath)"
