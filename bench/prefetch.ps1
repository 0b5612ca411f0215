#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Measures the weight prefetch of Restore-EngineCheckpoint on a directory of weight files: the module's own
    WeightPrefetcher reading them cold with 1, 8 and 16 readers and then again warm (where the kernel has cachestat,
    it finds them cached and reads nothing), beside the floor tool's cold read and the
    disk's own rate (O_DIRECT) and the read patterns it was chosen among (read_patterns.py); then a restore whose
    criu and CUDA restore take -RestoreSeconds, followed by the engine's read of its weights (8 readers in 32 MiB
    reads, as the torch weight loader), without and with the prefetch started when the restore starts. Every cold
    read first drops the files from the page cache (fsync, POSIX_FADV_DONTNEED). Writes the figures as JSON too.
.NOTES
    WeightPrefetcher is internal to the module: it is reached by reflection, so what is timed is the module's code.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,

    # Weight files to read; the default writes -GiB of them into a temporary folder (on the disk of /var/tmp) and removes it.
    [string] $ModelDirectory,

    [int] $GiB = 8,

    [double] $RestoreSeconds = 2,

    [int] $Rounds = 2,

    [string] $ResultPath = (Join-Path $PSScriptRoot "../out/bench/prefetch-$(Get-Date -Format yyyyMMdd-HHmmss).json")
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force
. (Join-Path $PSScriptRoot 'Common.ps1')
$python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { 'python3' }

$written = -not $ModelDirectory
if ($written) {
    $ModelDirectory = Join-Path /var/tmp "criu-prefetch-bench-$PID"
    New-Item -ItemType Directory $ModelDirectory | Out-Null
    # One random 64 MiB block repeated: the file system stores every copy (ext4 and xfs neither compress nor dedupe).
    & $python -c "import os, sys
block = os.urandom(64 << 20)
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], 'model-%05d-of-%05d.safetensors' % (i + 1, int(sys.argv[2]))), 'wb') as f:
        for _ in range(16):
            f.write(block)
os.sync()" $ModelDirectory $GiB
}

$type = [CriuCheckpoint.Core.ErrorIds].Assembly.GetType('CriuCheckpoint.Checkpoint.WeightPrefetcher')
$readAsync = $type.GetMethod('ReadAsync')
function New-Prefetcher([int] $Readers) {
    [Activator]::CreateInstance($type, [Reflection.BindingFlags]'Instance,Public,NonPublic', $null, @($Readers, [long]64MB, [int]1MB, $null), $null)
}
function Start-Prefetch($Prefetcher, [Threading.CancellationToken] $Token) { $readAsync.Invoke($Prefetcher, @($ModelDirectory, $Token)) }
function Clear-PageCache { $null = Invoke-FloorTool '--drop', $ModelDirectory }
function Invoke-ReadPattern {
    $previous = $env:PYTHONPATH
    $env:PYTHONPATH = (Join-Path $ModulePath 'EngineHost') + [IO.Path]::PathSeparator + $env:PYTHONPATH
    try { & $python (Join-Path $PSScriptRoot 'read_patterns.py') @args | ConvertFrom-Json -AsHashtable }
    finally { $env:PYTHONPATH = $previous }
}
function Get-Rate($Result) { [math]::Round($Result.BytesPerSecond / 1e9, 3) }

$bytes = (Get-ChildItem $ModelDirectory -Filter *.safetensors | Measure-Object Length -Sum).Sum
$result = [ordered]@{
    date  = (Get-Date).ToUniversalTime().ToString('o')
    host  = [ordered]@{ cores = [Environment]::ProcessorCount; kernel = (uname -r); filesystem = (findmnt -n -o FSTYPE,SOURCE -T $ModelDirectory) }
    bytes = $bytes
    runs  = @()
}
try {
    foreach ($round in 1..$Rounds) {
        $run = [ordered]@{ floor = (Invoke-FloorTool '--read', $ModelDirectory, '--cold', '--direct').read }
        $run.patterns = @(Invoke-ReadPattern $ModelDirectory 'direct:8' 'chunks:1' 'chunks:8' 'shared:8' 'willneed')
        $run.prefetch = [ordered]@{}
        foreach ($readers in 1, 8, 16) {
            $prefetcher = New-Prefetcher $readers
            Clear-PageCache
            $cold = (Start-Prefetch $prefetcher ([Threading.CancellationToken]::None)).GetAwaiter().GetResult()
            $warm = (Start-Prefetch $prefetcher ([Threading.CancellationToken]::None)).GetAwaiter().GetResult()
            $run.prefetch["$readers"] = [ordered]@{
                cold_gb_per_s = Get-Rate $cold; cold_cached_bytes = $cold.CachedBytes
                warm_s = [math]::Round($warm.Elapsed.TotalSeconds, 4); warm_read_bytes = $warm.Bytes; warm_cached_bytes = $warm.CachedBytes
                complete = $cold.Complete -and $warm.Complete
            }
        }
        $run.restore = [ordered]@{}
        foreach ($prefetched in $false, $true) {
            Clear-PageCache
            $stop = [Threading.CancellationTokenSource]::new()
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $reading = if ($prefetched) { Start-Prefetch (New-Prefetcher 8) $stop.Token }
            Start-Sleep -Milliseconds ($RestoreSeconds * 1000)
            $engine = Invoke-ReadPattern '--warm' $ModelDirectory 'loader:8'
            $watch.Stop()
            $stop.Cancel()
            $figures = [ordered]@{ restore_s = $RestoreSeconds; to_weights_read_s = [math]::Round($watch.Elapsed.TotalSeconds, 3); engine_read_s = $engine.seconds }
            if ($prefetched) {
                $done = $reading.GetAwaiter().GetResult()
                $figures.prefetch_bytes = $done.Bytes
                $figures.prefetch_gb_per_s = Get-Rate $done
            }
            $stop.Dispose()
            $run.restore[$(if ($prefetched) { 'with_prefetch' } else { 'without_prefetch' })] = $figures
        }
        $result.runs += $run
        Write-Host ("round {0}: disk {1:0.00} GB/s, floor cold {2:0.00} GB/s; prefetch cold {3:0.00} GB/s, warm {4:0.000} s reading {5:0.00} GB (8 readers); weights read {6:0.00} s after the restore started without the prefetch, {7:0.00} s with it" -f `
                $round, ($run.floor.direct_bytes_per_s / 1e9), ($run.floor.cold_bytes_per_s / 1e9), $run.prefetch['8'].cold_gb_per_s, $run.prefetch['8'].warm_s,
            ($run.prefetch['8'].warm_read_bytes / 1e9), $run.restore.without_prefetch.to_weights_read_s, $run.restore.with_prefetch.to_weights_read_s)
    }
}
finally {
    if ($written) { Remove-Item -Recurse -Force $ModelDirectory }
}

New-Item -ItemType Directory -Force (Split-Path $ResultPath) | Out-Null
$result | ConvertTo-Json -Depth 6 | Set-Content $ResultPath
Write-Host "Figures written to $ResultPath"
