#!/usr/bin/env pwsh
<#
.SYNOPSIS
    The GPU benchmark (issue 5), in one run on one GPU host: the physical floor, our restore of an 8B-class torch
    engine against its cold start and the floor, the KV-in-image baseline, and each lever measured alone. Every figure
    is printed beside its ratio; all of them go to a JSON file, rewritten after every section so that a run cut short
    still leaves what it measured.
.DESCRIPTION
    Sections, in order of what matters most:
      floor     pinned and pageable host-to-GPU rates, a fresh process's cuInit, read rates of the stores' file systems
      ours      llama-8b (random bf16 weights written to safetensors), CUDA graphs, KV pool sized by
                -GpuMemoryUtilization 0.9 (more than half the GPU), -WeightsFromSource, image in tmpfs
      baseline  the KV-in-image baseline: the same model with its weights and KV cache in the image (a smaller KV pool,
                KvCacheGiB, or the image would not fit in host memory: this favours the baseline), CUDA calls one
                process at a time, restored into the host PID namespace after the original exited
      weights   lever: the same model with its weights in the image (only -WeightsFromSource differs from ours), and
                lever: that image restored from a disk store, page cache warm and cold, against tmpfs
      criu      ours' image restored in turn by the module's criu and by -FallbackCriuPath (the criu-restore phase and
                restore-to-first-token of each, tokens checked), and by the module's criu with -DirectImageRead
    cold_node ours with the page cache of the model, the image and the Python/torch libraries dropped (drop_caches
                where allowed, else posix_fadvise per file): a cold start, a restore reading the weights after criu
                (-SkipWeightPrefetch) and one prefetching them while criu and the CUDA restore run; floor: weights at
                the disk's cold rate + image at its rate + GPU bytes at the pinned host-to-GPU rate
    holder    ours restored onto a GPU where a weight holder keeps the model (Start-WeightHolder), the model's page
                cache dropped before each restore: the weights are mapped, not read
    levers    llama-1b preset: transparent huge pages always vs never for criu's restore, N replicas at once
                (N = 1, 2, 4: their CUDA restores overlap); the torch engine has one GPU process, so CUDA restore in
                parallel within one engine has nothing to overlap there (the coordinator's parallelism is unit-tested)
    -Sections picks some of them; the floor is always measured, since every ratio needs it.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string] $ModulePath,

    # A memory-backed store (the page cache is the store) and a disk-backed one, for the tmpfs-vs-disk lever.
    [string] $MemoryStore = '/dev/shm/criu-bench',

    [string] $DiskStore = '/var/tmp/criu-bench-store',

    [string] $ModelDir = '/var/tmp/criu-bench-llama-8b',

    [int] $Restores = 3,

    [double] $KvCacheGiB = 8,

    # Ours sizes its KV pool by -GpuMemoryUtilization 0.9, not by a sequence cap: at least half of any GPU.
    [int] $MaxNumSeqs = 4096,

    [ValidateSet('ours', 'criu', 'cold_node', 'holder', 'baseline', 'weights_in_image', 'levers')]
    [string[]] $Sections = @('ours', 'criu', 'cold_node', 'holder', 'baseline', 'weights_in_image', 'levers'),

    # The criu the module's own is measured against in the criu section (the GPU kit's, on the GPU host).
    [string] $FallbackCriuPath = $env:CRIUCHECKPOINT_FALLBACK_CRIU,

    [string] $ResultPath = (Join-Path $PSScriptRoot "../out/bench/gpu-$(Get-Date -Format yyyyMMdd-HHmmss).json")
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
Import-Module (Join-Path $ModulePath 'CriuCheckpoint.psd1') -Force
. (Join-Path $PSScriptRoot 'Common.ps1')
$Prompt = 'The capital of France is'
$ThpControl = '/sys/kernel/mm/transparent_hugepage/enabled'

$result = [ordered]@{
    date   = (Get-Date).ToUniversalTime().ToString('o')
    gpu    = (nvidia-smi --query-gpu=name --format=csv,noheader | Select-Object -First 1)
    driver = (nvidia-smi --query-gpu=driver_version --format=csv,noheader | Select-Object -First 1)
    gpu_memory_bytes = [long](nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | Select-Object -First 1) * 1MB
    host   = [ordered]@{ cores = [Environment]::ProcessorCount; kernel = (uname -r); thp = (Get-Content $ThpControl -ErrorAction Ignore) }
    criu   = (& (Join-Path $ModulePath 'tools/criu/bin/criu') --version | Select-Object -First 1)
}

function Save-Result {
    New-Item -ItemType Directory -Force (Split-Path $ResultPath) | Out-Null
    $result | ConvertTo-Json -Depth 8 | Set-Content $ResultPath
}

function Get-Phases($Timings) {
    $phases = [ordered]@{}
    foreach ($phase in $Timings.GetEnumerator()) { $phases[$phase.Key] = [math]::Round($phase.Value, 3) }
    $phases
}

function Write-Figure([string] $Name, [double] $Seconds, [string] $Ratio = '') {
    Write-Host ('{0,-44} {1,8:0.000} s  {2}' -f $Name, $Seconds, $Ratio)
}

# Cold start, reference tokens, save: one configuration's engine and checkpoint.
function New-Measured([string] $Label, [hashtable] $Start, [string] $Store, [hashtable] $Save = @{}) {
    $engine = Start-VllmEngine @Start -Backend torch -Device cuda -Name "bench-$Label" -ReadyTimeout 900
    $run = [ordered]@{
        cold_start_s = [math]::Round($engine.StartupSeconds, 3); cold_start_phases = Get-Phases $engine.StartupTime
        gpu_memory_bytes_serving = $engine.GpuMemoryBytes; kv_cache_bytes_serving = $engine.KvCacheBytes
    }
    $reference = (Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 32).TokenIds
    $checkpoint = $engine | Save-EngineCheckpoint -Path $Store -Force @Save
    $run.save_s = [math]::Round($checkpoint.SaveSeconds, 3)
    $run.save_phases = Get-Phases $checkpoint.Timings
    $run.image_bytes = $checkpoint.Manifest.ImageBytes
    $run.gpu_bytes_checkpointed = $checkpoint.Manifest.Gpu.BytesCheckpointed
    $run.caches_kept = $checkpoint.Manifest.CachesKept
    Write-Host ("`n== $Label`: cold start {0:0.00} s, KV pool {1:N1} GiB, save {2:0.00} s, image {3:N2} GB, GPU bytes {4:N2} GB" -f `
        $run.cold_start_s, ($run.kv_cache_bytes_serving / 1GB), $run.save_s, ($run.image_bytes / 1e9), ($run.gpu_bytes_checkpointed / 1e9))
    [pscustomobject]@{ Run = $run; Checkpoint = $checkpoint; Reference = $reference }
}

# Restore to first token (all replicas answering), tokens checked, replicas stopped: one measurement.
function Measure-Restore($Measured, [hashtable] $Options = @{}, [int] $Count = 1) {
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $replicas = @($Measured.Checkpoint | Restore-EngineCheckpoint -Count $Count -TimeoutSec 900 @Options)
    $null = $replicas | Invoke-EngineGenerate -Prompt $Prompt -MaxTokens 1
    $watch.Stop()
    try {
        if ($replicas.Count -ne $Count) { throw "$($replicas.Count) of $Count replicas restored." }
        foreach ($replica in $replicas) {
            $tokens = (Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 32).TokenIds
            if (Compare-Object $tokens $Measured.Reference -SyncWindow 0) { throw "Replica $($replica.Name) answered other tokens than the engine it was saved from." }
        }
        $ready = Get-Content -Raw (Join-Path $replicas[0].RunDirectory 'ready.json') | ConvertFrom-Json -AsHashtable
        [ordered]@{ to_first_token_s = [math]::Round($watch.Elapsed.TotalSeconds, 3); phases = Get-Phases $replicas[0].StartupTime; engine_resume_phases = $ready.phases; weights_from = $ready.weights_from }
    }
    finally { $replicas | Stop-VllmEngine }
}

function Measure-Restores($Measured, [int] $Times, [hashtable] $Options = @{}) {
    $runs = @(foreach ($i in 1..$Times) { Measure-Restore $Measured $Options })
    $median = Get-Median $runs.to_first_token_s
    $typical = $runs | Where-Object to_first_token_s -EQ $median | Select-Object -First 1
    [ordered]@{ to_first_token_s = $median; runs_s = @($runs.to_first_token_s); phases = $typical.phases; engine_resume_phases = $typical.engine_resume_phases }
}

# image bytes / read rate + GPU bytes / pinned rate, plus the weights' way from the source files for -WeightsFromSource.
function Get-Floor($Run, [double] $ImageReadRate, [long] $SourceBytes = 0) {
    $h2d = $result.floor.host_to_gpu.pinned_bytes_per_s
    $seconds = $Run.image_bytes / $ImageReadRate + $Run.gpu_bytes_checkpointed / $h2d
    if ($SourceBytes) { $seconds += $SourceBytes / $result.floor.model_read.warm_bytes_per_s + $SourceBytes / $h2d }
    [math]::Round($seconds, 3)
}

function Add-Ratios($Run, [double] $Floor) {
    $Run.floor_s = $Floor
    $Run.restore_vs_floor = [math]::Round($Run.restore.to_first_token_s / $Floor, 2)
    $Run.cold_start_vs_restore = [math]::Round($Run.cold_start_s / $Run.restore.to_first_token_s, 2)
    Write-Figure 'restore to first token (median)' $Run.restore.to_first_token_s ('{0:0.00}x the floor ({1:0.000} s), {2:0.0}x faster than cold start' -f $Run.restore_vs_floor, $Floor, $Run.cold_start_vs_restore)
    foreach ($phase in $Run.restore.phases.GetEnumerator()) { Write-Figure "  $($phase.Key)" $phase.Value }
    foreach ($phase in $Run.restore.engine_resume_phases.GetEnumerator()) { Write-Figure "    engine $($phase.Key)" $phase.Value }
}

# A section that fails is recorded and the next one runs: one GPU run should bring back all it can.
function Invoke-Section([string] $Name, [scriptblock] $Body) {
    if ($Name -notin $Sections) { return }
    try { & $Body }
    catch {
        Write-Warning "Section $Name failed: $_"
        if (-not $result.Contains('errors')) { $result.errors = [ordered]@{} }
        $result.errors[$Name] = "$_"  # an ErrorRecord prints its ErrorDetails (the log excerpt) when it has them
    }
    finally { Save-Result }
}

# Drops the page cache: all of it where the kernel lets this process (drop_caches), else the given files' pages
# (posix_fadvise DONTNEED, by the floor tool). Returns which.
function Clear-PageCache([string[]] $Paths) {
    sync
    try { Set-Content /proc/sys/vm/drop_caches 3 -ErrorAction Stop; 'drop_caches' }
    catch { $null = Invoke-FloorTool (@('--drop') + $Paths); 'fadvise' }
}

# What a cold node has not read yet: the model, the image, and the Python and torch libraries the engine maps.
function Get-ColdPaths($Measured) {
    $python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { 'python3' }
    $libraries = & $python -c 'import os, sysconfig, torch; print(os.path.dirname(torch.__file__)); print(sysconfig.get_paths()["stdlib"])'
    @($ModelDir, $Measured.Checkpoint.Path) + @($libraries)
}

function Add-Floor($Run, [double] $Floor) {
    $Run.floor_s = $Floor
    $Run.vs_floor = [math]::Round($Run.to_first_token_s / $Floor, 2)
    $Run
}

New-Item -ItemType Directory -Force $MemoryStore, $DiskStore | Out-Null
$previousThp = if (Test-Path $ThpControl) { ((Get-Content $ThpControl) -replace '.*\[(\w+)\].*', '$1') }
try {
    Write-Host '== Physical floor'
    $result.floor = Invoke-FloorTool '--h2d-gib', '4', '--cuda-init', '3'
    Write-Host ('pinned host->GPU {0:N1} GB/s, pageable {1:N1} GB/s; cuInit in a fresh process {2:0.000} s' -f `
        ($result.floor.host_to_gpu.pinned_bytes_per_s / 1e9), ($result.floor.host_to_gpu.pageable_bytes_per_s / 1e9), $result.floor.cuda_init.median_s)

    if ($Sections -ne 'levers') {
        $watch = [Diagnostics.Stopwatch]::StartNew()
        Invoke-EngineTool 'write_random_model' '--preset', 'llama-8b', '--out', $ModelDir
        $result.write_llama_8b_s = [math]::Round($watch.Elapsed.TotalSeconds, 1)
        $sourceBytes = (Get-ChildItem $ModelDir -Filter *.safetensors | Measure-Object Length -Sum).Sum
        $result.llama_8b_weights_bytes = $sourceBytes
        $result.floor.model_read = (Invoke-FloorTool '--read', $ModelDir).read
        Write-Host ('llama-8b written in {0:0.0} s: {1:N2} GB of safetensors, read back at {2:N1} GB/s (page cache warm)' -f `
            $result.write_llama_8b_s, ($sourceBytes / 1e9), ($result.floor.model_read.warm_bytes_per_s / 1e9))
        Save-Result
    }

    Invoke-Section 'ours' {
        # Kept for the sections after it, and removed at the end.
        $script:ours = New-Measured 'ours' @{ Model = $ModelDir; WeightsFromSource = $true; EngineArgs = @{ max_num_seqs = $MaxNumSeqs } } $MemoryStore
        $result.floor.memory_store_read = (Invoke-FloorTool '--read', $ours.Checkpoint.Path).read
        $ours.Run.restore = Measure-Restores $ours $Restores
        Add-Ratios $ours.Run (Get-Floor $ours.Run $result.floor.memory_store_read.warm_bytes_per_s $sourceBytes)
        $ours.Run.kv_bytes_in_image = if ($ours.Run.caches_kept) { $ours.Run.kv_cache_bytes_serving } else { 0 }
        $result.ours = $ours.Run
        Save-Result
        foreach ($count in 2, 4) {
            # Several replicas of a -WeightsFromSource engine share the GPU: each needs its whole KV pool, so only
            # as many as fit are tried.
            if ($count * $ours.Run.gpu_memory_bytes_serving -gt $result.gpu_memory_bytes * 0.95) { continue }
            $ours.Run["replicas_$count"] = Measure-Restore $ours -Count $count
        }
    }

    Invoke-Section 'holder' {
        if (-not $ours) { throw 'the holder section needs the ours section' }
        $holder = Start-WeightHolder -Model $ModelDir -Gpu 0 -Name bench-holder
        try {
            $run = [ordered]@{ holder_load_s = $holder.LoadSeconds; holder_bytes = $holder.WeightBytes }
            Write-Host ('weight holder: {0:N2} GB in {1:0.00} s' -f ($holder.WeightBytes / 1e9), $holder.LoadSeconds)
            $restores = @(foreach ($i in 1..$Restores) {
                $null = Invoke-FloorTool '--drop', $ModelDir
                Measure-Restore $ours
            })
            $run.to_first_token_s = Get-Median $restores.to_first_token_s
            $run.runs_s = @($restores.to_first_token_s)
            $run.phases = ($restores | Where-Object to_first_token_s -EQ $run.to_first_token_s | Select-Object -First 1).phases
            $run.engine_resume_phases = ($restores | Where-Object to_first_token_s -EQ $run.to_first_token_s | Select-Object -First 1).engine_resume_phases
            $run.weights_from = @($restores.weights_from | Sort-Object -Unique)
            $floor = [math]::Round($ours.Run.image_bytes / $result.floor.memory_store_read.warm_bytes_per_s + $ours.Run.gpu_bytes_checkpointed / $result.floor.host_to_gpu.pinned_bytes_per_s, 3)
            $null = Add-Floor $run $floor
            $run.cold_start_vs_restore = [math]::Round($ours.Run.cold_start_s / $run.to_first_token_s, 2)
            Write-Figure 'with the weight holder, model page cache cold' $run.to_first_token_s ('{0:0.00}x the floor ({1:0.000} s), {2:0.0}x faster than cold start; weights from {3}' -f $run.vs_floor, $floor, $run.cold_start_vs_restore, ($run.weights_from -join ', '))
            $result.holder = $run
        }
        finally { $holder | Stop-WeightHolder }
    }

    Invoke-Section 'cold_node' {
        if (-not $ours) { throw 'the cold_node section needs the ours section' }
        $paths = Get-ColdPaths $ours
        $cold = [ordered]@{}
        $cold.drop = Clear-PageCache $paths
        $cold.model_read = (Invoke-FloorTool '--read', $ModelDir, '--cold').read
        $diskRate = $cold.model_read.cold_bytes_per_s
        $imageRate = $result.floor.memory_store_read.warm_bytes_per_s
        $h2d = $result.floor.host_to_gpu.pinned_bytes_per_s
        $gpuBytes = $ours.Run.gpu_bytes_checkpointed + $sourceBytes
        $restoreFloor = [math]::Round($sourceBytes / $diskRate + $ours.Run.image_bytes / $imageRate + $gpuBytes / $h2d, 3)
        Write-Host ('model read cold at {0:N2} GB/s ({1} threads); cold-node restore floor {2:0.000} s' -f ($diskRate / 1e9), $cold.model_read.threads, $restoreFloor)

        $null = Clear-PageCache $paths
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $engine = Start-VllmEngine -Model $ModelDir -WeightsFromSource -EngineArgs @{ max_num_seqs = $MaxNumSeqs } -Backend torch -Device cuda -Name bench-cold -ReadyTimeout 900
        $null = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 1
        $cold.cold_start = [ordered]@{ to_first_token_s = [math]::Round($watch.Elapsed.TotalSeconds, 3); phases = Get-Phases $engine.StartupTime }
        $engine | Stop-VllmEngine
        Write-Figure 'cold node: cold start to first token' $cold.cold_start.to_first_token_s

        $null = Clear-PageCache $paths
        $cold.restore_reading_after = Add-Floor (Measure-Restore $ours @{ SkipWeightPrefetch = $true }) $restoreFloor
        $null = Clear-PageCache $paths
        $cold.restore_prefetching = Add-Floor (Measure-Restore $ours) $restoreFloor
        $cold.cold_start_vs_restore = [math]::Round($cold.cold_start.to_first_token_s / $cold.restore_prefetching.to_first_token_s, 2)
        Write-Figure 'cold node: restore, weights read after criu' $cold.restore_reading_after.to_first_token_s ('{0:0.00}x the floor' -f $cold.restore_reading_after.vs_floor)
        Write-Figure 'cold node: restore, weights prefetched' $cold.restore_prefetching.to_first_token_s ('{0:0.00}x the floor ({1:0.000} s), {2:0.0}x faster than cold start' -f $cold.restore_prefetching.vs_floor, $restoreFloor, $cold.cold_start_vs_restore)
        foreach ($phase in $cold.restore_prefetching.phases.GetEnumerator()) { Write-Figure "  $($phase.Key)" $phase.Value }
        $result.cold_node = $cold
    }

    Invoke-Section 'criu' {
        if (-not $ours) { throw 'the criu section needs the ours section' }
        $module = Join-Path $ModulePath 'tools/criu/bin/criu'
        $variants = [ordered]@{ module = @{ CriuPath = $module }; module_direct_image_read = @{ CriuPath = $module; DirectImageRead = $true } }
        # The image was dumped by the module's criu: an older one restores it only with -Force (the version check).
        if ($FallbackCriuPath) { $variants.fallback = @{ CriuPath = $FallbackCriuPath; Force = $true } }
        $runs = [ordered]@{}
        foreach ($name in $variants.Keys) { $runs[$name] = [Collections.Generic.List[object]]::new() }
        $criu = [ordered]@{}
        foreach ($i in 1..$Restores) {
            foreach ($name in @($variants.Keys)) {
                # One variant that fails (a criu that cannot read this store directly) is recorded; the others go on.
                try { $runs[$name].Add((Measure-Restore $ours $variants[$name])) }
                catch { $criu["$($name)_error"] = "$_"; $variants.Remove($name) }
            }
        }
        foreach ($name in $variants.Keys) {
            $path = $variants[$name].CriuPath
            $criu[$name] = [ordered]@{
                criu = (& $path --version | Select-Object -First 1)
                criu_restore_s = Get-Median ($runs[$name] | ForEach-Object { $_.phases['criu-restore'] })
                to_first_token_s = Get-Median $runs[$name].to_first_token_s
                runs_s = @($runs[$name].to_first_token_s)
            }
            Write-Figure "criu-restore, $name ($($criu[$name].criu))" $criu[$name].criu_restore_s ('restore to first token {0:0.000} s' -f $criu[$name].to_first_token_s)
        }
        if ($criu.Contains('fallback')) {
            $criu.module_vs_fallback_criu_restore = [math]::Round($criu.module.criu_restore_s / $criu.fallback.criu_restore_s, 2)
            $criu.module_vs_fallback_to_first_token = [math]::Round($criu.module.to_first_token_s / $criu.fallback.to_first_token_s, 2)
        }
        $result.criu = $criu
    }

    Invoke-Section 'baseline' {
        $utilization = [math]::Min(0.9, ($sourceBytes + $KvCacheGiB * 1GB + 4GB) / $result.gpu_memory_bytes)
        $baseline = New-Measured 'baseline' @{ Model = $ModelDir; GpuMemoryUtilization = [math]::Round($utilization, 3) } $MemoryStore @{ KeepCaches = $true; CudaThrottleLimit = 1 }
        try {
            $baseline.Run.gpu_memory_utilization = [math]::Round($utilization, 3)
            $read = (Invoke-FloorTool '--read', $baseline.Checkpoint.Path).read
            $baseline.Run.image_read = $read
            $baseline.Run.restore = Measure-Restores $baseline 1 @{ HostPidNamespace = $true; CudaThrottleLimit = 1 }
            Add-Ratios $baseline.Run (Get-Floor $baseline.Run $read.warm_bytes_per_s)
            $result.baseline = $baseline.Run
            $baseline.Run.speedup_of_ours = [math]::Round($baseline.Run.restore.to_first_token_s / $result.ours.restore.to_first_token_s, 2)
            Write-Host ('ours restores {0:0.0}x faster than the KV-in-image baseline (whose KV pool is {1:N1} GiB, ours {2:N1} GiB)' -f `
                $baseline.Run.speedup_of_ours, ($baseline.Run.kv_cache_bytes_serving / 1GB), ($result.ours.kv_cache_bytes_serving / 1GB))
        }
        finally { $baseline.Checkpoint | Remove-EngineCheckpoint -Confirm:$false }
    }

    Invoke-Section 'weights_in_image' {
        $inImage = New-Measured 'weights-in-image' @{ Model = $ModelDir } $MemoryStore
        try {
            $read = (Invoke-FloorTool '--read', $inImage.Checkpoint.Path).read
            $inImage.Run.image_read = $read
            $inImage.Run.restore = Measure-Restores $inImage 1
            Add-Ratios $inImage.Run (Get-Floor $inImage.Run $read.warm_bytes_per_s)
            $result.weights_in_image = $inImage.Run
            Save-Result

            $onDisk = Join-Path $DiskStore (Split-Path -Leaf $inImage.Checkpoint.Path)
            Copy-Item -Recurse $inImage.Checkpoint.Path $onDisk
            $inImage.Checkpoint | Remove-EngineCheckpoint -Confirm:$false
            $inImage.Checkpoint = Get-EngineCheckpoint -Path $onDisk
            $result.floor.disk_store_read = (Invoke-FloorTool '--read', $onDisk, '--cold').read
            $disk = [ordered]@{ warm = Measure-Restore $inImage }
            $null = Invoke-FloorTool '--drop', $onDisk
            $disk.cold = Measure-Restore $inImage
            $result.weights_in_image.disk_store = $disk
            Write-Figure 'same image from disk, page cache warm' $disk.warm.to_first_token_s ('{0:0.00}x tmpfs' -f ($disk.warm.to_first_token_s / $inImage.Run.restore.to_first_token_s))
            Write-Figure 'same image from disk, page cache cold' $disk.cold.to_first_token_s ('{0:0.00}x tmpfs' -f ($disk.cold.to_first_token_s / $inImage.Run.restore.to_first_token_s))
            Save-Result
        }
        finally { $inImage.Checkpoint | Remove-EngineCheckpoint -Confirm:$false }
    }

    Invoke-Section 'levers' {
        $small = New-Measured 'llama-1b' @{ Model = 'llama-1b' } $MemoryStore
        try {
            $levers = [ordered]@{ engine = $small.Run }
            if ($previousThp) {
                try {
                    foreach ($mode in 'never', 'always') {
                        Set-Content $ThpControl $mode
                        $levers["thp_$mode"] = Measure-Restores $small 2
                    }
                    Write-Figure 'criu-restore with huge pages never' $levers.thp_never.phases['criu-restore'] ('always: {0:0.000} s' -f $levers.thp_always.phases['criu-restore'])
                }
                catch { $levers.thp_error = "$_" }
                finally { Set-Content $ThpControl $previousThp -ErrorAction Ignore }
            }
            foreach ($count in 1, 2, 4) {
                $levers["replicas_$count"] = Measure-Restore $small -Count $count
                Write-Figure "$count replica(s) at once, all answering" $levers["replicas_$count"].to_first_token_s ('criu-restore {0:0.000} s, cuda-restore {1:0.000} s (first replica)' -f $levers["replicas_$count"].phases['criu-restore'], $levers["replicas_$count"].phases['cuda-restore'])
            }
            $result.levers = $levers
            Save-Result
        }
        finally { $small.Checkpoint | Remove-EngineCheckpoint -Confirm:$false }
    }
}
finally {
    if ($ours) { $ours.Checkpoint | Remove-EngineCheckpoint -Confirm:$false }
    Get-WeightHolder -Name 'bench-*' | Stop-WeightHolder
    Get-VllmEngine | Where-Object Name -Like 'bench-*' | Stop-VllmEngine -Confirm:$false
    Save-Result
    Remove-Item -Recurse -Force $ModelDir, $DiskStore -ErrorAction Ignore
    Write-Host "`nresults: $ResultPath"
}
