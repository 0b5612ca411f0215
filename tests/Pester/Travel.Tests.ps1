# Checkpoints that travel and damage found before CRIU runs: export, import into another store, restore; a flipped
# byte in any image, a corrupt archive; the modes of what a save and an import write.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Other = Join-Path $TestHome 'other-store'
    $script:Prompt = 'Once upon a time'
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }
    $engine = Start-VllmEngine -Model tiny-16m -Workers 2 -Name traveller
    $script:Before = Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16
    $script:Saved = $engine | Save-EngineCheckpoint -Path $Store
    $script:Archive = $Saved | Export-EngineCheckpoint -DestinationPath (Join-Path $TestHome 'checkpoint.tar')
    $script:Imported = Import-EngineCheckpoint -Path $Archive -Store $Other
    # Records every criu restore, so a test can tell that criu never ran.
    $script:Marker = Join-Path $TestHome 'criu-restored'
    $script:RecordingCriu = New-CriuWrapper $TestHome 'criu-recording' "if [ `"`$1`" = restore ]; then touch '$Marker'; fi; exec `"$RealCriu`" `"`$@`""
}

AfterAll {
    Remove-TestHome $TestHome
}

Describe 'Checkpoints that travel' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
        Assert-NothingLeft $TestHome $Other
    }

    It 'restores a checkpoint exported, imported into another store, with the same greedy tokens' {
        $Archive.Length | Should -BeGreaterThan $Saved.Manifest.ImageBytes
        $Imported.Path | Should -Be (Join-Path $Other $Saved.ConfigHash)
        ($Imported | Test-EngineCheckpoint).Valid | Should -BeTrue

        $restored = $Imported | Restore-EngineCheckpoint -Name travelled
        $restored.StartupTime.Keys | Should -Contain 'verify'
        $after = Invoke-EngineGenerate -Engine $restored -Prompt $Prompt -MaxTokens 16
        $after.TokenIds | Should -Be $Before.TokenIds
        $after.Text | Should -Be $Before.Text
    }

    It 'writes images, manifest and log 0600 and folders 0700, saved and imported' {
        foreach ($checkpoint in $Saved.Path, $Imported.Path) {
            (Get-Item $checkpoint).UnixMode | Should -Be 'drwx------'
            (Get-Item (Join-Path $checkpoint 'images')).UnixMode | Should -Be 'drwx------'
            foreach ($file in Get-ChildItem -Recurse -File $checkpoint) {
                $file.UnixMode | Should -Be '-rw-------' -Because "$($file.FullName) holds the engine's memory or its log"
            }
        }
        (Get-Item $Store).UnixMode | Should -Be 'drwx------'
        (Get-Item $Other).UnixMode | Should -Be 'drwx------'
    }

    It 'refuses an image with one byte flipped, whichever image, as CheckpointCorrupt before criu runs' {
        $copy = Join-Path $TestHome 'flipped'
        Copy-Item -Recurse $Saved.Path $copy
        $images = @(Get-ChildItem (Join-Path $copy 'images') -Filter '*.img' | Where-Object Length -GT 0)
        $images.Count | Should -BeGreaterThan 10
        foreach ($image in $images) {
            $bytes = [IO.File]::ReadAllBytes($image.FullName)
            $at = [math]::Floor($bytes.Length / 2)
            $bytes[$at] = $bytes[$at] -bxor 0xff
            [IO.File]::WriteAllBytes($image.FullName, $bytes)

            $err = { Restore-EngineCheckpoint -Path $copy -CriuPath $RecordingCriu -ErrorAction Stop } | Should -Throw -PassThru
            $err.FullyQualifiedErrorId | Should -Be 'CheckpointCorrupt,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
            "$err" | Should -Match ([regex]::Escape("images/$($image.Name) has XXH128"))
            Test-Path $Marker | Should -BeFalse
            Get-ChildItem (Join-Path $TestHome 'replicas') -ErrorAction Ignore | Should -BeNullOrEmpty

            $bytes[$at] = $bytes[$at] -bxor 0xff
            [IO.File]::WriteAllBytes($image.FullName, $bytes)
        }
        Test-EngineCheckpoint -LiteralPath $copy -Quiet | Should -BeTrue
        Remove-Item -Recurse -Force $copy
    }

    It 'refuses a corrupt archive as CheckpointCorrupt and leaves no staging directory' {
        $bytes = [IO.File]::ReadAllBytes($Archive.FullName)
        $flipped = Join-Path $TestHome 'flipped.tar'
        $bytes[[math]::Floor($bytes.Length / 2)] = $bytes[[math]::Floor($bytes.Length / 2)] -bxor 0xff
        [IO.File]::WriteAllBytes($flipped, $bytes)
        $truncated = Join-Path $TestHome 'truncated.tar'
        Copy-Item $Archive.FullName $truncated
        $stream = [IO.File]::Open($truncated, 'Open'); $stream.SetLength([math]::Floor($bytes.Length / 3)); $stream.Dispose()
        $target = Join-Path $TestHome 'third-store'

        foreach ($bad in $flipped, $truncated) {
            $err = { Import-EngineCheckpoint -Path $bad -Store $target -ErrorAction Stop } | Should -Throw -PassThru
            $err.FullyQualifiedErrorId | Should -Be 'CheckpointCorrupt,CriuCheckpoint.Commands.ImportEngineCheckpointCommand'
            Get-ChildItem -Force $target -ErrorAction Ignore | Should -BeNullOrEmpty
        }
        Remove-Item $flipped, $truncated
    }
}
