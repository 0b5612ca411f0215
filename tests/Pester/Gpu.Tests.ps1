# GPU validation (tag GPU): torch engines on CUDA, checkpointed through the NVIDIA driver and CRIU, restored into
# fresh PID namespaces. Skipped where there is no NVIDIA GPU or no torch. On a GPU host:
#   $env:CRIUCHECKPOINT_GPU_RESULTS = '<file.json>'; Invoke-Pester tests/Pester/Gpu.Tests.ps1
# records every figure measured (cold start, save and restore phases, image and GPU bytes) into that file.

BeforeDiscovery {
    $script:HasGpu = (Test-Path /dev/nvidia0) -and [bool](Get-Command nvidia-smi -ErrorAction Ignore)
}

Describe 'GPU checkpoint and restore of torch engines' -Tag GPU -Skip:(-not $HasGpu) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'Common.ps1')
        $script:TestHome = New-TestHome
        $script:Store = if (Test-Path /dev/shm) { Join-Path /dev/shm "criu-gpu-$PID" } else { Join-Path $TestHome 'store' }
        $script:Prompt = 'The capital of France is'
        $script:Results = [ordered]@{
            date   = (Get-Date).ToUniversalTime().ToString('o')
            gpu    = (nvidia-smi --query-gpu=name --format=csv,noheader 2>$null | Select-Object -First 1)
            driver = (nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>$null | Select-Object -First 1)
            host   = [ordered]@{ cpu_cores = [Environment]::ProcessorCount; kernel = (uname -r); memory_gib = [math]::Round((Get-Content /proc/meminfo -TotalCount 1).Split(' ', [StringSplitOptions]::RemoveEmptyEntries)[1] / 1MB, 1) }
            runs   = [ordered]@{}
        }

        function Get-Phases($Timings) {
            $phases = [ordered]@{}
            foreach ($phase in $Timings.GetEnumerator()) { $phases[$phase.Key] = [math]::Round($phase.Value, 3) }
            $phases
        }

        # The space a save asks of the store is what its checkpoint then takes, never less, at most 1.5 times as much.
        function Test-SpaceEstimate($Run, $Checkpoint) {
            $Run.estimated_image_bytes = $Checkpoint.Manifest.EstimatedImageBytes
            $Run.estimate_vs_checkpoint = [math]::Round($Checkpoint.Manifest.EstimatedImageBytes / $Checkpoint.SizeBytes, 3)
            $Checkpoint.Manifest.EstimatedImageBytes | Should -BeGreaterOrEqual $Checkpoint.SizeBytes
            $Run.estimate_vs_checkpoint | Should -BeLessOrEqual 1.5
        }

        # PIDs the driver lists as holding GPU memory.
        function Get-GpuHolder { @(nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>$null | Where-Object { $_.Trim() }) }

        # Another process that takes GPU memory, as another tenant of the GPU would.
        function Start-GpuFiller([long] $Bytes) {
            $code = "import time, torch; x = torch.empty($Bytes, dtype=torch.uint8, device='cuda'); print('held', flush=True); time.sleep(900)"
            $info = [Diagnostics.ProcessStartInfo]::new($env:CRIUCHECKPOINT_PYTHON)
            $info.ArgumentList.Add('-c')
            $info.ArgumentList.Add($code)
            $info.RedirectStandardOutput = $true
            $filler = [Diagnostics.Process]::Start($info)
            $filler.StandardOutput.ReadLine() | Should -Be 'held'
            $filler
        }

        # Cold start, generate, save, restore, generate again: the figures of one configuration, asserted and recorded.
        # $BeforeRestore runs between the save and the restore.
        function Invoke-GpuRoundTrip([string] $Label, [hashtable] $Start, [int] $Replicas = 1, [scriptblock] $BeforeRestore = {}) {
            $run = [ordered]@{}
            $engine = Start-VllmEngine @Start -Backend torch -Device cuda -Name "gpu-$Label" -ReadyTimeout 900
            $run.cold_start_s = [math]::Round($engine.StartupSeconds, 3)
            $run.cold_start_phases = Get-Phases $engine.StartupTime
            $run.gpu_memory_bytes_serving = $engine.GpuMemoryBytes
            $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 32
            $before.CompletionTokens | Should -Be 32

            $gpuProcesses = @(Get-GpuProcess -Engine $engine)
            $gpuProcesses.Count | Should -BeGreaterThan 0
            $gpuProcesses.CudaState | Sort-Object -Unique | Should -Be 'Running'
            $run.gpu_processes = $gpuProcesses.Count

            $checkpoint = $engine | Save-EngineCheckpoint -Path $Store -Force
            $run.save_s = [math]::Round($checkpoint.SaveSeconds, 3)
            $run.save_phases = Get-Phases $checkpoint.Timings
            $run.image_bytes = $checkpoint.SizeBytes
            $run.gpu_bytes_checkpointed = $checkpoint.GpuBytes
            $checkpoint.Manifest.Gpu | Should -Not -BeNullOrEmpty
            Test-SpaceEstimate $run $checkpoint
            # The canary: greedy bf16 on this GPU, recorded at the save; each replica answers it before it serves, with
            # token ids equal and logprobs within 0.001 (engine_host/canary.py), or fails with CanaryMismatch.
            $run.canary = $checkpoint.Manifest.Canary
            $checkpoint.Manifest.Canary.TokenIds.Count | Should -Be 2
            @($checkpoint.Manifest.Runtime.Processes | Where-Object { $_.GpuUuids.Count -gt 0 }).Count | Should -BeGreaterThan 0

            & $BeforeRestore
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $restored = @($checkpoint | Restore-EngineCheckpoint -Count $Replicas -Name "gpu-$Label-restored" -TimeoutSec 900)
            $answers = $restored | Invoke-EngineGenerate -Prompt $Prompt -MaxTokens 1
            $watch.Stop()
            $restored.Count | Should -Be $Replicas
            $run.restore_replicas = $Replicas
            $run.restore_to_first_token_s = [math]::Round($watch.Elapsed.TotalSeconds, 3)
            $run.restore_phases = Get-Phases $restored[0].StartupTime
            # Work beside the phases (the weight prefetch of a -WeightsFromSource checkpoint), not among them.
            $run.restore_beside_phases = @($restored[0].StartupTime.Background | ForEach-Object {
                    [ordered]@{ name = $_.Name; seconds = [math]::Round($_.Seconds, 3); bytes = $_.Bytes; bytes_per_s = [math]::Round($_.BytesPerSecond) } })
            $restored[0].StartupTime.Keys | Should -Contain 'canary'
            $run.restore_vs_cold_start = [math]::Round($run.cold_start_s / $run.restore_to_first_token_s, 2)
            $answers.Count | Should -Be $Replicas

            $hostNetwork = (Get-Item /proc/self/ns/net).LinkTarget
            foreach ($replica in $restored) {
                # A network namespace per replica is what lets two copies of one CUDA process bind the runtime's per-PID socket.
                (Get-Item "/proc/$($replica.ProcessId)/ns/net").LinkTarget | Should -Not -Be $hostNetwork
                $after = Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 32
                $after.TokenIds | Should -Be $before.TokenIds
                $inside = $replica.ProcessTree | Where-Object NamespaceProcessId -EQ $engine.ProcessId
                $inside.ProcessId | Should -Not -Be $engine.ProcessId
                $states = @(Get-GpuProcess -Engine $replica)
                $states.Count | Should -Be $gpuProcesses.Count
                $states.CudaState | Sort-Object -Unique | Should -Be 'Running'
            }
            $restored | Stop-VllmEngine
            $Results.runs[$Label] = $run
        }
    }

    AfterAll {
        Get-VllmEngine -ErrorAction Ignore | Stop-VllmEngine -Confirm:$false
        if ($env:CRIUCHECKPOINT_GPU_RESULTS) {
            $Results | ConvertTo-Json -Depth 6 | Set-Content $env:CRIUCHECKPOINT_GPU_RESULTS
        }
        Remove-Item -Recurse -Force $Store -ErrorAction Ignore
        Remove-TestHome $TestHome
    }

    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'round-trips the 1B preset (random init) with identical greedy tokens' {
        Invoke-GpuRoundTrip -Label 'llama-1b' -Start @{ Model = 'llama-1b' }
    }

    It 'restores two replicas from one checkpoint on one GPU' {
        Invoke-GpuRoundTrip -Label 'llama-1b-two-replicas' -Start @{ Model = 'llama-1b' } -Replicas 2
    }

    It 'frees the GPU memory of a restored engine within 10 s of a SIGKILL of its recorded PID' {
        $checkpoint = Start-VllmEngine -Model llama-1b -Backend torch -Device cuda -Name gpu-kill -ReadyTimeout 900 | Save-EngineCheckpoint -Path $Store -Force
        $replica = $checkpoint | Restore-EngineCheckpoint -Name gpu-kill-restored -TimeoutSec 900
        Get-GpuHolder | Should -Not -BeNullOrEmpty
        kill -9 $replica.ProcessId
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while ((Get-GpuHolder).Count -gt 0 -and $watch.Elapsed.TotalSeconds -lt 30) { Start-Sleep -Milliseconds 50 }
        $Results.kill_to_gpu_released_s = [math]::Round($watch.Elapsed.TotalSeconds, 3)
        Get-GpuHolder | Should -BeNullOrEmpty
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 10
        (Get-VllmEngine -Name gpu-kill-restored).State | Should -BeIn 'Stopped', 'Failed'
    }

    It 'refuses a restore into a GPU another process filled, with InsufficientGpuMemory within 10 s, and restores once it is free' {
        $engine = Start-VllmEngine -Model llama-1b -Backend torch -Device cuda -Name gpu-full -ReadyTimeout 900
        $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16
        $checkpoint = $engine | Save-EngineCheckpoint -Path $Store -Force
        $serving = $checkpoint.Manifest.Gpu.ServingBytes[0]
        $serving | Should -BeGreaterThan 0
        $free = [long](nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits | Select-Object -First 1) * 1MB
        $filler = Start-GpuFiller ($free - [long]($serving / 2))
        try {
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $err = { $checkpoint | Restore-EngineCheckpoint -Name gpu-full-restored -ErrorAction Stop } | Should -Throw -PassThru
            $watch.Stop()
            $Results.insufficient_gpu_memory_s = [math]::Round($watch.Elapsed.TotalSeconds, 3)
            $err.FullyQualifiedErrorId | Should -Be 'InsufficientGpuMemory,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
            "$err" | Should -Match 'MiB free'
            $watch.Elapsed.TotalSeconds | Should -BeLessThan 10
            @(Get-GpuProcess | Where-Object CudaState -In 'Locked', 'Checkpointed') | Should -BeNullOrEmpty
            Get-VllmEngine | Should -BeNullOrEmpty
        }
        finally {
            $filler.Kill(); $filler.WaitForExit(); $filler.Dispose()
        }

        $replica = $checkpoint | Restore-EngineCheckpoint -Name gpu-full-restored -TimeoutSec 900
        (Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 16).TokenIds | Should -Be $before.TokenIds
    }

    Context 'an 8B-class model written to safetensors' {
        BeforeAll {
            # On a disk, not tmpfs, so that its page cache can be dropped.
            $script:ModelDir = "/var/tmp/llama-8b-$PID"
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $env:PYTHONPATH = (Join-Path (Split-Path $ModuleManifest) 'EngineHost') + ':' + $env:PYTHONPATH
            & $env:CRIUCHECKPOINT_PYTHON -m engine_host.tools.write_random_model --preset llama-8b --out $ModelDir
            $LASTEXITCODE | Should -Be 0
            $Results.write_llama_8b_s = [math]::Round($watch.Elapsed.TotalSeconds, 1)
            $Results.llama_8b_bytes = (Get-ChildItem $ModelDir -Filter *.safetensors | Measure-Object Length -Sum).Sum
        }

        AfterAll {
            Remove-Item -Recurse -Force $ModelDir -ErrorAction Ignore
        }

        It 'round-trips with the weights in the image' {
            Invoke-GpuRoundTrip -Label 'llama-8b' -Start @{ Model = $ModelDir }
            $Results.runs['llama-8b'].restore_beside_phases | Should -BeNullOrEmpty
        }

        It 'round-trips with -WeightsFromSource: neither weights nor KV cache in the image' {
            # With the model's files out of the page cache, the prefetch reads them beside criu and the CUDA restore (it
            # skips what the cache holds), up to when the replica served.
            $dropModelCache = {
                & $env:CRIUCHECKPOINT_PYTHON -m engine_host.tools.measure_floor --drop $ModelDir | Out-Null
                $LASTEXITCODE | Should -Be 0
            }
            Invoke-GpuRoundTrip -Label 'llama-8b-weights-from-source' -Start @{ Model = $ModelDir; WeightsFromSource = $true } -BeforeRestore $dropModelCache
            $Results.runs['llama-8b-weights-from-source'].image_bytes | Should -BeLessThan ($Results.runs['llama-8b'].image_bytes / 2)
            $prefetch = $Results.runs['llama-8b-weights-from-source'].restore_beside_phases
            $prefetch.name | Should -Be 'weight-prefetch'
            $prefetch.bytes | Should -BeGreaterThan 0
            $prefetch.bytes | Should -BeLessOrEqual $Results.llama_8b_bytes
        }

        It 'restores -WeightsFromSource with its weights mapped from a weight holder: same tokens, holder shown, nothing left after' {
            $engine = Start-VllmEngine -Model $ModelDir -WeightsFromSource -GpuMemoryUtilization 0.6 -Backend torch -Device cuda -Name gpu-holder -ReadyTimeout 900
            $before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 32
            $checkpoint = $engine | Save-EngineCheckpoint -Path $Store -Force
            $engine | Stop-VllmEngine
            $holder = Start-WeightHolder -Model $ModelDir -Gpu 0 -Name gpu-holder-llama
            try {
                $holder.State | Should -Be 'Ready'
                # The allocation is rounded up to the driver's granularity (2 MiB on an H200).
                $holder.WeightBytes | Should -BeGreaterOrEqual $Results.llama_8b_bytes
                $holder.WeightBytes | Should -BeLessThan ($Results.llama_8b_bytes + 64MB)
                $shown = @(Get-GpuProcess | Where-Object WeightHolderName -EQ 'gpu-holder-llama')
                $shown.Count | Should -Be 1
                $shown[0].GpuMemoryBytes | Should -BeGreaterOrEqual $holder.WeightBytes
                (Get-WeightHolder -Name gpu-holder-llama).ProcessId | Should -Be $holder.ProcessId

                $watch = [Diagnostics.Stopwatch]::StartNew()
                $replica = $checkpoint | Restore-EngineCheckpoint -Name gpu-holder-restored -TimeoutSec 900 -Verbose 4>&1 |
                    Tee-Object -Variable restoreOutput | Where-Object { $_ -is [CriuCheckpoint.Engine.EngineInfo] }
                $null = Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 1
                $watch.Stop()
                ($restoreOutput | Where-Object { $_ -is [Management.Automation.VerboseRecord] }).Message |
                    Should -Contain "Replica gpu-holder-restored took its weights from weight holder gpu-holder-llama."
                $ready = Get-Content -Raw (Join-Path $replica.RunDirectory 'ready.json') | ConvertFrom-Json
                $ready.weights_from | Should -Be 'holder'
                (Invoke-EngineGenerate -Engine $replica -Prompt $Prompt -MaxTokens 32).TokenIds | Should -Be $before.TokenIds
                $Results.runs['llama-8b-weight-holder'] = [ordered]@{
                    holder_load_s = $holder.LoadSeconds; holder_bytes = $holder.WeightBytes
                    restore_to_first_token_s = [math]::Round($watch.Elapsed.TotalSeconds, 3); restore_phases = Get-Phases $replica.StartupTime
                    engine_resume_phases = $ready.phases
                }
                $replica | Stop-VllmEngine
            }
            finally {
                Get-WeightHolder | Stop-WeightHolder
            }
            Get-WeightHolder | Should -BeNullOrEmpty
            Get-GpuHolder | Should -BeNullOrEmpty
        }

        It 'saves -WeightsFromSource into a store smaller than its GPU footprint but larger than its image' {
            $small = Join-Path $TestHome 'small-store'
            New-Item -ItemType Directory $small | Out-Null
            mount -t tmpfs -o size=6g,mode=0700 criu-small-store $small
            try {
                $engine = Start-VllmEngine -Model $ModelDir -WeightsFromSource -Backend torch -Device cuda -Name gpu-small-store -ReadyTimeout 900
                $engine.GpuMemoryBytes | Should -BeGreaterThan 6GB
                $checkpoint = $engine | Save-EngineCheckpoint -Path (Join-Path $small 'store')
                $run = [ordered]@{ gpu_memory_bytes_serving = $engine.GpuMemoryBytes; image_bytes = $checkpoint.SizeBytes }
                Test-SpaceEstimate $run $checkpoint
                $Results.runs['llama-8b-weights-from-source-6g-store'] = $run
            }
            finally {
                Get-VllmEngine | Stop-VllmEngine -Confirm:$false
                umount $small
            }
        }
    }
}
