# Real CRIU, a real tiny engine: the weight prefetch of Restore-EngineCheckpoint on real files. The tiny backend
# refuses weights_from_source (it builds its weights in memory) and torch is not on CPU hosts, so the checkpoint of a
# tiny engine gets the two fields a -WeightsFromSource save of the torch backend writes (spec.model, a model
# directory, and spec.engine_args.weights_from_source) written into its manifest: the restore prefetches what its
# manifest names, and the tiny engine resumes as it always does. GPU hosts run the real thing (tests/Pester/Gpu.Tests.ps1).

BeforeDiscovery {
    # cachestat(2), which tells the prefetch what the page cache holds already, came with Linux 6.5.
    $script:HasCachestat = [version]((uname -r) -replace '^(\d+\.\d+).*', '$1') -ge [version]'6.5'
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { '/usr/bin/python3' }
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }

    # A model directory: two weight files, a config, and what the prefetch must not open (a symlink to a file
    # outside, a FIFO, both named like weights).
    $script:Model = Join-Path $TestHome 'model'
    New-Item -ItemType Directory $Model | Out-Null
    $script:Weights = foreach ($shard in @{ Name = 'model-00001-of-00002.safetensors'; Bytes = 8MB + 4096 }, @{ Name = 'model-00002-of-00002.safetensors'; Bytes = 3MB }) {
        $path = Join-Path $Model $shard.Name
        $bytes = [byte[]]::new($shard.Bytes)
        [Random]::Shared.NextBytes($bytes)
        [IO.File]::WriteAllBytes($path, $bytes)
        $path
    }
    Set-Content (Join-Path $Model 'config.json') '{}'
    $script:Outside = Join-Path $TestHome 'outside.bin'
    [IO.File]::WriteAllBytes($Outside, [byte[]]::new(2MB))
    $null = New-Item -ItemType SymbolicLink -Path (Join-Path $Model 'link.safetensors') -Target $Outside
    mkfifo (Join-Path $Model 'pipe.safetensors')

    $engine = Start-VllmEngine -Model tiny-4m -Name prefetched
    $script:Checkpoint = ($engine | Save-EngineCheckpoint -Path $Store).Path

    # Writes what a -WeightsFromSource save of a model directory records into the manifest, with Python, so every
    # other field keeps its exact text.
    function Set-ManifestModel([string] $Directory) {
        $manifest = Join-Path $Checkpoint 'manifest.json'
        & $Python -c "import json,sys; p=sys.argv[1]; m=json.load(open(p)); m['spec']['model']=sys.argv[2]; m['spec']['engine_args']={'weights_from_source': True}; open(p,'w').write(json.dumps(m, indent=2))" $manifest $Directory
        if ($LASTEXITCODE -ne 0) { throw "could not rewrite $manifest" }
    }

    # Drops files from the page cache (fsync, then POSIX_FADV_DONTNEED), as a cold node has them.
    function Clear-PageCache([string[]] $Path) {
        & $Python -c "import os,sys
for p in sys.argv[1:]:
    fd=os.open(p, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)" @Path
        if ($LASTEXITCODE -ne 0) { throw "could not drop $Path from the page cache" }
    }

    # Bytes of the file in the page cache now (util-linux fincore).
    function Get-CachedBytes([string] $Path) { [long](fincore --bytes --noheadings --output RES $Path).Trim() }
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'The weight prefetch of Restore-EngineCheckpoint' {
    BeforeEach {
        Set-ManifestModel $Model
        Clear-PageCache ($Weights + $Outside)
    }

    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'reads the weight files into the page cache beside the restore, refuses what is not a regular file, and shows it beside the phases' {
        $Weights | ForEach-Object { Get-CachedBytes $_ | Should -Be 0 }

        $output = Restore-EngineCheckpoint -Path $Checkpoint -Name replica -Verbose 4>&1
        $engine = $output | Where-Object { $_ -is [CriuCheckpoint.Engine.EngineInfo] }
        $verbose = @($output | Where-Object { $_ -is [Management.Automation.VerboseRecord] } | ForEach-Object Message)

        $engine.State | Should -Be 'Ready'
        $sizes = ($Weights | Get-Item | Measure-Object Length -Sum).Sum
        $prefetch = $engine.StartupTime.Background
        @($prefetch).Count | Should -Be 1
        $prefetch.Name | Should -Be 'weight-prefetch'
        $prefetch.Bytes | Should -Be $sizes
        $prefetch.Seconds | Should -BeGreaterThan 0
        $prefetch.BytesPerSecond | Should -BeGreaterThan 0
        $engine.StartupTime.Keys | Should -Not -Contain 'weight-prefetch'
        # Some VMs give back a few pages of idle files within seconds, whatever memory is free: nearly all is enough.
        foreach ($file in $Weights) { Get-CachedBytes $file | Should -BeGreaterThan (0.98 * (Get-Item $file).Length) }
        Get-CachedBytes $Outside | Should -Be 0
        $verbose | Should -Contain "Weight prefetch: reading the *.safetensors files of $Model into the page cache, beside criu and the CUDA restore."
        $verbose | Should -Contain "Weight prefetch: not read, $Model/link.safetensors: it is a symbolic link."
        $verbose | Should -Contain "Weight prefetch: not read, $Model/pipe.safetensors: it is not a regular file."
        $verbose | Where-Object { $_ -like 'Weight prefetch finished: 2 file(s) of 0.01 GB, 0.01 GB read in * s (* GB/s), 0.00 GB in the page cache already.' } |
            Should -Not -BeNullOrEmpty
        $verbose | Where-Object { $_ -match "^Engine replica restored: .*; beside them: weight-prefetch \d+\.\d{3} s, 0\.01 GB at " } | Should -Not -BeNullOrEmpty

        # Kept in the registry: another look at the engine shows it too, as a line of its own in the list view.
        (Get-VllmEngine -Name replica).StartupTime.Background.Bytes | Should -Be $sizes
        (Get-VllmEngine -Name replica | Format-List | Out-String) | Should -Match '(?m)^\s+weight-prefetch \d+\.\d{3} s beside them, 0\.01 GB at '
    }

    It 'does not read again what the page cache holds already' -Skip:(-not $HasCachestat) {
        foreach ($file in $Weights) { $null = [IO.File]::ReadAllBytes($file) }

        $engine = Restore-EngineCheckpoint -Path $Checkpoint -Name warm

        # Each file is one chunk, read again only if the page cache lost any of its pages since (a VM may take a
        # few back within seconds), so less than both is read.
        $engine.StartupTime.Background.Bytes | Should -BeLessThan ($Weights | Get-Item | Measure-Object Length -Sum).Sum
    }

    It 'leaves the weight files to the engine with -SkipWeightPrefetch' {
        $output = Restore-EngineCheckpoint -Path $Checkpoint -Name unprefetched -SkipWeightPrefetch -Verbose 4>&1
        $engine = $output | Where-Object { $_ -is [CriuCheckpoint.Engine.EngineInfo] }

        $engine.State | Should -Be 'Ready'
        $engine.StartupTime.Background | Should -BeNullOrEmpty
        foreach ($file in $Weights) { Get-CachedBytes $file | Should -Be 0 }
        $output | Where-Object { $_ -is [Management.Automation.VerboseRecord] -and $_.Message -like 'Weight prefetch: skipped (-SkipWeightPrefetch)*' } |
            Should -Not -BeNullOrEmpty
    }

    It 'warns and restores when the model directory is gone' {
        $missing = Join-Path $TestHome 'gone'
        Set-ManifestModel $missing

        $engine = Restore-EngineCheckpoint -Path $Checkpoint -Name missing -WarningVariable warnings -WarningAction SilentlyContinue

        $engine.State | Should -Be 'Ready'
        $engine.StartupTime.Background | Should -BeNullOrEmpty
        $warnings.Count | Should -Be 1
        $warnings[0].Message | Should -Be "The weights in $missing were not prefetched ($missing`: No such file or directory); each engine reads them from the disk itself."
    }
}
