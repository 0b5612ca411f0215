#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Measures the tiny CPU engine in one run and prints each figure with its ratio: cold start by phase, link
    round trip (and what CurveZMQ costs it: plain against CURVE round trips of a NetMQ link to pyzmq), generation
    throughput with 1 vs 16 prompts in flight, then save and restore-to-first-token by phase with the image size,
    as ratios to the cold start and to the physical floor (the image's bytes at the store's read rate, page cache
    warm; and a restore with the page cache cold beside the cold read rate), and what verifying the image hashes
    costs (the verify phase, beside a restore with -SkipVerify), and what the canary costs at the save and at each
    restore (the canary phases). Writes the figures as JSON too.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,

    [string] $Model = 'tiny-256m',

    [int] $Workers = 2,

    [int] $MaxTokens = 32,

    # Where checkpoints go; the default is on the same filesystem as /tmp, with the page cache warm after the save.
    [string] $Store = (Join-Path ([IO.Path]::GetTempPath()) "criu-bench-$PID"),

    [int] $Restores = 5,

    [string] $ResultPath = (Join-Path $PSScriptRoot "../out/bench/cpu-$(Get-Date -Format yyyyMMdd-HHmmss).json")
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force
. (Join-Path $PSScriptRoot 'Common.ps1')

function Format-Seconds([double] $Seconds) { '{0,8:0.000} s' -f $Seconds }

# Health round trips of a NetMQ DEALER driven as EngineLink drives its own (bench/LinkRoundTrip.cs) to a pyzmq ROUTER
# thread that answers health as the engine's socket thread does (bench/link_peer.py), plain and CurveZMQ, in
# interleaved rounds so both meet the same load. The engine has no plain link to compare with: an insecure mode users could reach is what the link's
# security rules out.
function Measure-CurveCost([int] $Rounds = 100, [int] $PerRound = 100) {
    # NetMQ is built for netstandard2.1: the compiler must see netstandard and the assemblies of the types it exposes.
    $references = [NetMQ.NetMQSocket].Assembly.Location, 'netstandard', 'System.Threading', 'System.ComponentModel.Primitives'
    Add-Type -Path (Join-Path $PSScriptRoot 'LinkRoundTrip.cs') -ReferencedAssemblies $references
    $python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { 'python3' }
    $modes = 'plain', 'curve'
    $servers = @{}
    $links = @{}
    $samples = @{ plain = [Collections.Generic.List[double]]::new(); curve = [Collections.Generic.List[double]]::new() }
    try {
        foreach ($mode in $modes) {
            $start = [Diagnostics.ProcessStartInfo]::new($python)
            $start.ArgumentList.Add((Join-Path $PSScriptRoot 'link_peer.py'))
            $start.Environment['PYTHONPATH'] = (@(Join-Path $ModulePath 'EngineHost') + @($env:PYTHONPATH | Where-Object { $_ })) -join ':'
            if ($mode -eq 'curve') { $start.ArgumentList.Add('--curve') }
            $start.RedirectStandardInput = $true
            $start.RedirectStandardOutput = $true
            $servers[$mode] = [Diagnostics.Process]::Start($start)
            $server = $servers[$mode].StandardOutput.ReadLine() | ConvertFrom-Json
            $links[$mode] = [LinkRoundTrip]::new($server.endpoint, $server.server_public, $server.client_secret,
                [Convert]::FromBase64String($server.request))
        }
        foreach ($round in 1..$Rounds) {
            foreach ($mode in $modes) { $samples[$mode].AddRange($links[$mode].Measure($PerRound)) }
        }
    }
    finally {
        foreach ($link in $links.Values) { $link.Dispose() }
        foreach ($server in $servers.Values) {
            $server.StandardInput.Close()
            if (-not $server.WaitForExit(5000)) { $server.Kill() }
            $server.Dispose()
        }
    }
    $figures = [ordered]@{}
    foreach ($mode in $modes) {
        $sorted = $samples[$mode].ToArray()
        [Array]::Sort($sorted)
        $figures[$mode] = [ordered]@{ count = $sorted.Count
            p50_ms = [CriuCheckpoint.Link.LinkLatency]::Percentile($sorted, 0.50); p99_ms = [CriuCheckpoint.Link.LinkLatency]::Percentile($sorted, 0.99) }
    }
    $figures.ratio_p50 = $figures.curve.p50_ms / $figures.plain.p50_ms
    $figures.ratio_p99 = $figures.curve.p99_ms / $figures.plain.p99_ms
    $figures
}

$result = [ordered]@{
    date    = (Get-Date).ToUniversalTime().ToString('o')
    host    = [ordered]@{ cpu = ((Get-Content /proc/cpuinfo | Select-String '^model name' | Select-Object -First 1) -replace '.*:\s*', ''); cores = [Environment]::ProcessorCount; kernel = (uname -r) }
    engine  = [ordered]@{ backend = 'tiny'; model = $Model; workers = $Workers }
}

$engine = Start-VllmEngine -Backend tiny -Model $Model -Workers $Workers -Name "bench-$PID"
try {
    Write-Host "`n== Cold start of $Model with $Workers workers"
    foreach ($phase in $engine.StartupTime.GetEnumerator()) {
        Write-Host ('{0,-16} {1}  {2,6:P1} of cold start' -f $phase.Key, (Format-Seconds $phase.Value), ($phase.Value / $engine.StartupSeconds))
    }
    Write-Host ('{0,-16} {1}' -f 'total', (Format-Seconds $engine.StartupSeconds))
    $result.cold_start = [ordered]@{ total_s = $engine.StartupSeconds; phases = [ordered]@{} }
    foreach ($phase in $engine.StartupTime.GetEnumerator()) { $result.cold_start.phases[$phase.Key] = $phase.Value }

    Write-Host "`n== Link round trip (health, 500 requests, over CurveZMQ)"
    $latency = Measure-EngineLink -Engine $engine -Count 500
    Write-Host ('p50 {0:0.000} ms   p99 {1:0.000} ms   p99/p50 {2:0.00}' -f ($latency.MedianSeconds * 1000), ($latency.P99Seconds * 1000), ($latency.P99Seconds / $latency.MedianSeconds))
    $result.link = [ordered]@{ count = $latency.Count; p50_ms = $latency.MedianSeconds * 1000; p99_ms = $latency.P99Seconds * 1000; max_ms = $latency.MaximumSeconds * 1000 }

    Write-Host "`n== Link round trip before and after CurveZMQ: health over a stand-in of each end, plain and CURVE rounds interleaved"
    $curve = Measure-CurveCost
    foreach ($mode in 'plain', 'curve') {
        $label = if ($mode -eq 'plain') { 'plain (before)' } else { 'curve (after)' }
        Write-Host ('{0,-15} p50 {1:0.000} ms   p99 {2:0.000} ms   ({3} round trips)' -f $label, $curve[$mode].p50_ms, $curve[$mode].p99_ms, $curve[$mode].count)
    }
    Write-Host ('curve/plain: p50 {0:0.00}x   p99 {1:0.00}x   (limit 1.20x)' -f $curve.ratio_p50, $curve.ratio_p99)
    if ($curve.ratio_p50 -gt 1.2 -or $curve.ratio_p99 -gt 1.2) { Write-Warning 'CurveZMQ costs the link more than 1.2x a plain round trip.' }
    $result.link.curve_cost = $curve

    Write-Host "`n== Generation throughput, $MaxTokens tokens per prompt (greedy)"
    $null = Invoke-EngineGenerate -Engine $engine -Prompt 'warm up' -MaxTokens 4
    $throughput = [ordered]@{}
    foreach ($inFlight in 1, 16) {
        $prompts = 1..$inFlight | ForEach-Object { "Prompt number $_ of the benchmark" }
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $results = @($prompts | Invoke-EngineGenerate -Engine $engine -MaxTokens $MaxTokens)
        $watch.Stop()
        $tokens = ($results | Measure-Object CompletionTokens -Sum).Sum
        $throughput["$inFlight"] = [ordered]@{ tokens = $tokens; seconds = $watch.Elapsed.TotalSeconds; tokens_per_s = $tokens / $watch.Elapsed.TotalSeconds
            ttft_p50_ms = ($results.TimeToFirstTokenSeconds | ForEach-Object { $_ * 1000 } | Sort-Object)[[int][math]::Floor(($results.Count - 1) / 2)] }
        Write-Host ('{0,2} in flight: {1,5} tokens in {2}  {3,8:0.0} tokens/s' -f $inFlight, $tokens, (Format-Seconds $watch.Elapsed.TotalSeconds), $throughput["$inFlight"].tokens_per_s)
    }
    $speedup = $throughput['16'].tokens_per_s / $throughput['1'].tokens_per_s
    Write-Host ('batching speedup (16 vs 1 in flight): {0:0.00}x' -f $speedup)
    $result.generate = $throughput
    $result.generate.batching_speedup = $speedup
}
finally {
    $engine | Stop-VllmEngine
}

function Measure-RestoreToFirstToken($Checkpoint, [switch] $SkipVerify) {
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $restored = $Checkpoint | Restore-EngineCheckpoint -SkipVerify:$SkipVerify
    $first = Invoke-EngineGenerate -Engine $restored -Prompt $prompt -MaxTokens 1
    $watch.Stop()
    $answer = (Invoke-EngineGenerate -Engine $restored -Prompt $prompt -MaxTokens 8).Text
    $restored | Stop-VllmEngine
    if ($answer -ne $expected) { throw "Restored engine answered '$answer', not '$expected'." }
    [pscustomobject]@{ Total = $watch.Elapsed.TotalSeconds; Phases = $restored.StartupTime; FirstToken = $first.DurationSeconds }
}

Write-Host "`n== Save (criu dump of the whole tree; the engine ends with the dump)"
$cold = $result.cold_start.total_s
$prompt = 'Once upon a time'
$engine = Start-VllmEngine -Backend tiny -Model $Model -Workers $Workers -Name "bench-save-$PID"
$expected = (Invoke-EngineGenerate -Engine $engine -Prompt $prompt -MaxTokens 8).Text
$checkpoint = $engine | Save-EngineCheckpoint -Path $Store
try {
    foreach ($phase in $checkpoint.Timings.GetEnumerator()) {
        Write-Host ('{0,-16} {1}' -f $phase.Key, (Format-Seconds $phase.Value))
    }
    Write-Host ('{0,-16} {1}  {2:0.00}x cold start   image {3:N1} MiB' -f 'total', (Format-Seconds $checkpoint.SaveSeconds), ($checkpoint.SaveSeconds / $cold), ($checkpoint.SizeBytes / 1MB))
    $result.save = [ordered]@{ total_s = $checkpoint.SaveSeconds; image_bytes = $checkpoint.SizeBytes; ratio_to_cold_start = $checkpoint.SaveSeconds / $cold; phases = [ordered]@{} }
    foreach ($phase in $checkpoint.Timings.GetEnumerator()) { $result.save.phases[$phase.Key] = $phase.Value }

    Write-Host "`n== Physical floor: the image read back from the store"
    $read = (Invoke-FloorTool '--read', (Join-Path $checkpoint.Path 'images'), '--cold').read
    $floor = $checkpoint.Manifest.ImageBytes / $read.warm_bytes_per_s
    Write-Host ('{0} store, {1:N1} MiB: {2:N2} GB/s page cache warm, {3}; floor {4:0.000} s' -f $read.filesystem, ($read.bytes / 1MB),
        ($read.warm_bytes_per_s / 1e9), $(if ($read.cold_bytes_per_s) { '{0:N2} GB/s cold' -f ($read.cold_bytes_per_s / 1e9) } else { 'no cold read (memory-backed)' }), $floor)
    $result.floor = [ordered]@{ read = $read; floor_s = $floor }

    Write-Host "`n== Restore to first token ($Restores runs, median; image in page cache)"
    $runs = @(foreach ($i in 1..$Restores) { Measure-RestoreToFirstToken $checkpoint })
    $median = Get-Median $runs.Total
    $phases = [ordered]@{}
    foreach ($name in $runs[0].Phases.Keys) { $phases[$name] = Get-Median ($runs | ForEach-Object { $_.Phases[$name] }) }
    $phases['first-token'] = Get-Median $runs.FirstToken
    foreach ($name in $phases.Keys) { Write-Host ('{0,-16} {1,8:0.000} s' -f $name, $phases[$name]) }
    Write-Host ('{0,-16} {1,8:0.000} s  {2:0.00}x cold start ({3:0.0}x faster), {4:0.0}x the floor   all runs: {5}' -f 'to first token', $median, ($median / $cold), ($cold / $median), ($median / $floor), (($runs.Total | ForEach-Object { '{0:0.000}' -f $_ }) -join ' '))
    $result.restore = [ordered]@{ to_first_token_s = $median; ratio_to_cold_start = $median / $cold; ratio_to_floor = $median / $floor; runs_s = @($runs.Total); phases = $phases }

    # What verifying the image hashes costs a restore, beside the restore without it: the read also warms the page
    # cache criu reads next, so the difference is less than the verify phase.
    $unverified = Get-Median @(foreach ($i in 1..$Restores) { (Measure-RestoreToFirstToken $checkpoint -SkipVerify).Total })
    $verify = $phases['verify']
    Write-Host ('{0,-16} {1,8:0.000} s  {2:0.0}% of restore to first token, {3:N2} GB/s hashed; to first token with -SkipVerify {4:0.000} s' -f 'verify', $verify,
        (100 * $verify / $median), ($checkpoint.Manifest.ImageBytes / $verify / 1e9), $unverified)
    $result.restore.verify = [ordered]@{ verify_s = $verify; share_of_restore = $verify / $median; bytes_per_s = $checkpoint.Manifest.ImageBytes / $verify; to_first_token_skip_verify_s = $unverified }

    # What the canary costs: one short greedy generate answered at the save and by every replica before it serves.
    $canary = $phases['canary']
    $savedCanary = $checkpoint.Timings['canary']
    Write-Host ('{0,-16} {1,8:0.000} s  {2:0.0}% of restore to first token; {3:0.000} s at the save ({4:0.0}% of it)' -f 'canary', $canary,
        (100 * $canary / $median), $savedCanary, (100 * $savedCanary / $checkpoint.SaveSeconds))
    $result.restore.canary = [ordered]@{ restore_s = $canary; share_of_restore = $canary / $median; save_s = $savedCanary; share_of_save = $savedCanary / $checkpoint.SaveSeconds }

    if ($read.cold_bytes_per_s) {
        $null = Invoke-FloorTool '--drop', $checkpoint.Path
        $coldRestore = Measure-RestoreToFirstToken $checkpoint
        $coldFloor = $checkpoint.Manifest.ImageBytes / $read.cold_bytes_per_s
        Write-Host ('{0,-16} {1,8:0.000} s  page cache cold: {2:0.00}x the warm restore, {3:0.0}x its floor ({4:0.000} s)' -f 'to first token', $coldRestore.Total, ($coldRestore.Total / $median), ($coldRestore.Total / $coldFloor), $coldFloor)
        $result.restore.page_cache_cold = [ordered]@{ to_first_token_s = $coldRestore.Total; floor_s = $coldFloor; ratio_to_floor = $coldRestore.Total / $coldFloor }
    }

    Write-Host "`n== Replicas restored at once (to all answering)"
    foreach ($count in 2, 3) {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $replicas = @($checkpoint | Restore-EngineCheckpoint -Count $count)
        $null = $replicas | Invoke-EngineGenerate -Prompt $prompt -MaxTokens 1
        $watch.Stop()
        $replicas | Stop-VllmEngine
        Write-Host ('{0} replicas: {1,8:0.000} s  {2:0.00}x one restore' -f $count, $watch.Elapsed.TotalSeconds, ($watch.Elapsed.TotalSeconds / $median))
        $result.restore["replicas_$count"] = $watch.Elapsed.TotalSeconds
    }
}
finally {
    Remove-Item -Recurse -Force $Store -ErrorAction Ignore
}

New-Item -ItemType Directory -Force (Split-Path $ResultPath) | Out-Null
$result | ConvertTo-Json -Depth 6 | Set-Content $ResultPath
Write-Host "`nresults: $(Resolve-Path $ResultPath)"
