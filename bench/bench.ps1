#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Measures the tiny CPU engine in one run and prints each figure with its ratio: cold start by phase, link
    round trip (and what CurveZMQ costs it: plain against CURVE round trips of a NetMQ link to pyzmq), generation
    throughput with 1 vs 16 prompts in flight, then save and restore-to-first-token by phase with the image size,
    as ratios to the cold start and to the physical floor (the image's bytes at the store's read rate, page cache
    warm; and a restore with the page cache cold beside the cold read rate), and what verifying the image hashes
    costs (the verify phase, beside a restore with -SkipVerify), and what the canary costs at the save and at each
    restore (the canary phases); last, two criu binaries restoring the same images in turn (the criu-restore phase
    and restore-to-first-token of each, and their ratio). Writes the figures as JSON too.
.PARAMETER CriuPath
    The criu measured against the baseline: by default the module's own (tools/criu/bin/criu in -ModulePath).
.PARAMETER BaselineCriuPath
    The criu it is measured against: by default out/criu-4.2.1/bin/criu, which scripts/install-criu.sh installs there
    (criu 4.2.1-1 from Debian forky/sid) when it is absent.
.PARAMETER CriuRestores
    Restores per criu in the comparison, taken in turn (the median is reported).
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

    [string] $CriuPath,

    [string] $BaselineCriuPath = (Join-Path $PSScriptRoot '../out/criu-4.2.1/bin/criu'),

    [ValidateRange(1, 100)]
    [int] $CriuRestores = 5,

    [string] $ResultPath = (Join-Path $PSScriptRoot "../out/bench/cpu-$(Get-Date -Format yyyyMMdd-HHmmss).json")
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force
. (Join-Path $PSScriptRoot 'Common.ps1')

function Format-Seconds([double] $Seconds) { '{0,8:0.000} s' -f $Seconds }

# The 1, 5 and 15 minute load averages: on a shared host the figures are only as quiet as this.
function Get-LoadAverage { @((Get-Content /proc/loadavg) -split ' ' | Select-Object -First 3 | ForEach-Object { [double] $_ }) }

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
    host    = [ordered]@{ cpu = ((Get-Content /proc/cpuinfo | Select-String '^model name' | Select-Object -First 1) -replace '.*:\s*', ''); cores = [Environment]::ProcessorCount; kernel = (uname -r); load_average = Get-LoadAverage }
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

# One restore of $Checkpoint, timed to its first token, then asked the reference prompt again: Identical says whether it
# answered the reference's tokens ($reference, the engine's own answer before the save).
function Measure-RestoreToFirstToken($Checkpoint, [switch] $SkipVerify, [string] $Criu, [switch] $DirectImageRead) {
    $criuArguments = if ($Criu) { @{ CriuPath = $Criu } } else { @{} }
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $restored = $Checkpoint | Restore-EngineCheckpoint -SkipVerify:$SkipVerify -DirectImageRead:$DirectImageRead @criuArguments
    $first = Invoke-EngineGenerate -Engine $restored -Prompt $prompt -MaxTokens 1
    $watch.Stop()
    $answer = Invoke-EngineGenerate -Engine $restored -Prompt $prompt -MaxTokens $reference.CompletionTokens
    $restored | Stop-VllmEngine
    [pscustomobject]@{ Total = $watch.Elapsed.TotalSeconds; Phases = $restored.StartupTime; FirstToken = $first.DurationSeconds
        Identical = ($answer.TokenIds -join ',') -eq ($reference.TokenIds -join ','); Answer = $answer }
}

function Assert-ReferenceAnswer($Runs) {
    foreach ($run in @($Runs | Where-Object { -not $_.Identical })) {
        throw "A restored engine answered tokens [$($run.Answer.TokenIds -join ', ')] ('$($run.Answer.Text)'), not the reference's [$($reference.TokenIds -join ', ')] ('$($reference.Text)')."
    }
}

Write-Host "`n== Save (criu dump of the whole tree; the engine ends with the dump)"
$cold = $result.cold_start.total_s
$prompt = 'Once upon a time'
$engine = Start-VllmEngine -Backend tiny -Model $Model -Workers $Workers -Name "bench-save-$PID"
$reference = Invoke-EngineGenerate -Engine $engine -Prompt $prompt -MaxTokens 8
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
    Assert-ReferenceAnswer $runs
    $median = Get-Median $runs.Total
    $phases = [ordered]@{}
    foreach ($name in $runs[0].Phases.Keys) { $phases[$name] = Get-Median ($runs | ForEach-Object { $_.Phases[$name] }) }
    $phases['first-token'] = Get-Median $runs.FirstToken
    foreach ($name in $phases.Keys) { Write-Host ('{0,-16} {1,8:0.000} s' -f $name, $phases[$name]) }
    Write-Host ('{0,-16} {1,8:0.000} s  {2:0.00}x cold start ({3:0.0}x faster), {4:0.0}x the floor   all runs: {5}' -f 'to first token', $median, ($median / $cold), ($cold / $median), ($median / $floor), (($runs.Total | ForEach-Object { '{0:0.000}' -f $_ }) -join ' '))
    $result.restore = [ordered]@{ to_first_token_s = $median; ratio_to_cold_start = $median / $cold; ratio_to_floor = $median / $floor; runs_s = @($runs.Total); phases = $phases }

    # What verifying the image hashes costs a restore, beside the restore without it: the read also warms the page
    # cache criu reads next, so the difference is less than the verify phase.
    $unverifiedRuns = @(foreach ($i in 1..$Restores) { Measure-RestoreToFirstToken $checkpoint -SkipVerify })
    Assert-ReferenceAnswer $unverifiedRuns
    $unverified = Get-Median $unverifiedRuns.Total
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
        Assert-ReferenceAnswer $coldRestore
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

# The criu a comparison runs: a given path must exist; the default baseline is installed when absent.
function Resolve-ComparedCriu([string] $Path, [switch] $InstallBaseline) {
    if (-not (Test-Path -LiteralPath $Path) -and $InstallBaseline) {
        $prefix = Split-Path (Split-Path $Path)
        Write-Host "installing criu 4.2.1 into $prefix (scripts/install-criu.sh)"
        $env:CRIU_PACKAGE_VERSION = '4.2.1-1'
        try { & bash (Join-Path $PSScriptRoot '../scripts/install-criu.sh') $prefix | Out-Host }
        finally { Remove-Item Env:CRIU_PACKAGE_VERSION }
        if ($LASTEXITCODE -ne 0) { throw "scripts/install-criu.sh $prefix exited with $LASTEXITCODE" }
    }
    if (-not (Test-Path -LiteralPath $Path)) { throw "criu not found at $Path" }
    $version = (& $Path --version | Select-String '^Version:\s*(\S+)').Matches.Groups[1].Value
    if (-not $version) { throw "$Path --version printed no version" }
    [pscustomobject]@{ Path = (Resolve-Path -LiteralPath $Path).Path; Version = $version }
}

# Two criu binaries restoring the same images in turn. The checkpoint is saved by the older one, since a restore
# refuses images of a newer criu than its own (without -Force); each round takes the arms in the other order, so
# neither always follows the other into a warm cache. The newer criu, where it has --image-io-mode, restores with
# -DirectImageRead as a third arm: its native AIO page reads need it.
function Measure-CriuComparison($Baseline, $Candidate) {
    $older = if ([version] $Candidate.Version -lt [version] $Baseline.Version) { $Candidate } else { $Baseline }
    $arms = [ordered]@{
        baseline  = @{ Criu = $Baseline; Direct = $false }
        candidate = @{ Criu = $Candidate; Direct = $false }
    }
    if ((& $Candidate.Path --help) -match '--image-io-mode') {
        $arms.candidate_direct = @{ Criu = $Candidate; Direct = $true }
    }
    $store = "$Store-criu"
    $engine = Start-VllmEngine -Backend tiny -Model $Model -Workers $Workers -Name "bench-criu-$PID"
    try {
        $reference = Invoke-EngineGenerate -Engine $engine -Prompt $prompt -MaxTokens 8
        $saved = $engine | Save-EngineCheckpoint -Path $store -CriuPath $older.Path
    }
    catch {
        $engine | Stop-VllmEngine -ErrorAction Ignore
        throw
    }
    try {
        $loadBefore = Get-LoadAverage
        $runs = @{}
        foreach ($name in $arms.Keys) { $runs[$name] = [Collections.Generic.List[object]]::new() }
        foreach ($round in 1..$CriuRestores) {
            $order = @($arms.Keys)
            if ($round % 2 -eq 0) { [Array]::Reverse($order) }
            foreach ($name in $order) {
                $runs[$name].Add((Measure-RestoreToFirstToken $saved -Criu $arms[$name].Criu.Path -DirectImageRead:$arms[$name].Direct))
            }
        }
        $figures = [ordered]@{ saved_by = $older.Version; image_bytes = $saved.Manifest.ImageBytes; restores_each = $CriuRestores
            load_average = [ordered]@{ before = $loadBefore; after = Get-LoadAverage }; reference_tokens = @($reference.TokenIds); arms = [ordered]@{} }
        foreach ($name in $arms.Keys) {
            $arm = $runs[$name]
            $figures.arms[$name] = [ordered]@{ criu = $arms[$name].Criu.Version; path = $arms[$name].Criu.Path; direct_image_read = $arms[$name].Direct
                criu_restore_s = Get-Median ($arm | ForEach-Object { $_.Phases['criu-restore'] }); to_first_token_s = Get-Median $arm.Total
                criu_restore_runs_s = @($arm | ForEach-Object { $_.Phases['criu-restore'] }); to_first_token_runs_s = @($arm.Total)
                tokens_identical = -not ($arm | Where-Object { -not $_.Identical }) }
        }
        foreach ($name in @($arms.Keys | Where-Object { $_ -ne 'baseline' })) {
            $figures["ratio_$name"] = [ordered]@{ criu_restore = $figures.arms[$name].criu_restore_s / $figures.arms.baseline.criu_restore_s
                to_first_token = $figures.arms[$name].to_first_token_s / $figures.arms.baseline.to_first_token_s }
        }
        $result.criu_comparison = $figures
        foreach ($name in $arms.Keys) { Assert-ReferenceAnswer $runs[$name] }
        $figures
    }
    finally {
        Remove-Item -Recurse -Force $store -ErrorAction Ignore
    }
}

$failures = @()
try {
    $candidate = Resolve-ComparedCriu $(if ($CriuPath) { $CriuPath } else { Join-Path $ModulePath 'tools/criu/bin/criu' })
    $baseline = Resolve-ComparedCriu $BaselineCriuPath -InstallBaseline:(-not $PSBoundParameters.ContainsKey('BaselineCriuPath'))
    Write-Host "`n== criu $($candidate.Version) against criu $($baseline.Version): the same images restored by each in turn ($CriuRestores runs each, median; image in page cache)"
    $comparison = Measure-CriuComparison $baseline $candidate
    Write-Host ('saved by criu {0}, image {1:N1} MiB; every restore answered the reference tokens; load average {2} before, {3} after' -f $comparison.saved_by,
        ($comparison.image_bytes / 1MB), ($comparison.load_average.before -join ' '), ($comparison.load_average.after -join ' '))
    foreach ($name in $comparison.arms.Keys) {
        $arm = $comparison.arms[$name]
        $label = "criu $($arm.criu)$(if ($arm.direct_image_read) { ' -DirectImageRead' })"
        Write-Host ('{0,-30} criu-restore {1,7:0.000} s   to first token {2,7:0.000} s   runs: {3}' -f $label, $arm.criu_restore_s, $arm.to_first_token_s,
            (($arm.criu_restore_runs_s | ForEach-Object { '{0:0.000}' -f $_ }) -join ' '))
    }
    foreach ($name in @($comparison.Keys | Where-Object { $_ -like 'ratio_*' })) {
        $arm = $comparison.arms[$name -replace '^ratio_', '']
        Write-Host ('{0,-30} criu-restore {1:0.00}x   to first token {2:0.00}x  (of criu {3})' -f "criu $($arm.criu)$(if ($arm.direct_image_read) { ' -DirectImageRead' }) / baseline",
            $comparison[$name].criu_restore, $comparison[$name].to_first_token, $baseline.Version)
    }
    $result.criu_comparison = $comparison
}
catch {
    Write-Warning "criu comparison failed: $_"
    if (-not $result.Contains('criu_comparison')) { $result.criu_comparison = [ordered]@{} }
    $result.criu_comparison.failed = "$_"
    $failures += "criu comparison: $_"
}

New-Item -ItemType Directory -Force (Split-Path $ResultPath) | Out-Null
$result | ConvertTo-Json -Depth 6 | Set-Content $ResultPath
Write-Host "`nresults: $(Resolve-Path $ResultPath)"
if ($failures) { throw "Sections failed: $($failures -join '; ')" }
