# Stores only root can feed (docs/security.md): ownership checked on descriptors, a store another user can write
# refused, the swap race of issue 12, and hostile manifests that must create nothing on the host. Runs as root.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:Store = Join-Path $TestHome 'store'
    $script:Prompt = 'Once upon a time'
    $script:RestoreInsecure = 'CheckpointInsecure,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand'
    if (-not (Test-Path $RealCriu)) { throw "No criu at ${RealCriu}: run the tests through ./build.ps1 test, which installs CRIU 4.2." }
    # The attacker: a real unprivileged user with a random name, removed in AfterAll.
    $script:Attacker = 'crt' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    useradd --no-create-home --shell /usr/sbin/nologin $Attacker
    if ($LASTEXITCODE -ne 0) { throw "useradd $Attacker failed" }
    $engine = Start-VllmEngine -Model tiny-16m -Name trusted
    $script:Before = (Invoke-EngineGenerate -Engine $engine -Prompt $Prompt -MaxTokens 16).Text
    $script:Saved = $engine | Save-EngineCheckpoint -Path $Store

    # A copy of the checkpoint owned by root, writable by nobody else, at $Path.
    function Copy-Checkpoint([string] $Path) {
        Copy-Item -Recurse $Saved.Path $Path
        chmod -R go-w $Path
        $Path
    }
}

AfterAll {
    Get-VllmEngine | Stop-VllmEngine -Confirm:$false
    Remove-TestHome $TestHome
    userdel $Attacker
}

Describe 'Stores only root can feed' {
    AfterEach {
        Get-VllmEngine | Stop-VllmEngine -Confirm:$false
        Assert-NothingLeft $TestHome $Store
    }

    It 'refuses a store under a world-writable folder of another user, for a save and for a restore' {
        $open = Join-Path $TestHome 'open'
        New-Item -ItemType Directory $open | Out-Null
        chown $Attacker $open
        chmod 0777 $open
        $engine = Start-VllmEngine -Model tiny-16m -Name refused

        { $engine | Save-EngineCheckpoint -Path (Join-Path $open 'store') -ErrorAction Stop } |
            Should -Throw -ErrorId 'CheckpointInsecure,CriuCheckpoint.Commands.SaveEngineCheckpointCommand'
        (Get-VllmEngine -Name refused).State | Should -Be 'Ready'
        Test-Path (Join-Path $open 'store') | Should -BeFalse
        $copy = Copy-Checkpoint (Join-Path $open $Saved.ConfigHash)
        $err = { Restore-EngineCheckpoint -Path $copy -ErrorAction Stop } | Should -Throw -ErrorId $RestoreInsecure -PassThru
        $err.Exception.Message | Should -Match ([regex]::Escape($open))
    }

    It 'restores root''s own images or refuses, never anything else, while another user swaps the checkpoint for a symlink' {
        # The store the attacker can write; every other restore it is sticky, where others cannot rename root's entries.
        $race = Join-Path $TestHome 'race'
        New-Item -ItemType Directory $race | Out-Null
        chmod 0777 $race
        $target = Copy-Checkpoint (Join-Path $race $Saved.ConfigHash)
        $checkpoint = Get-EngineCheckpoint -Path $target
        # The attacker's copy has one byte flipped: had anything of it been read, the outcome would be CheckpointCorrupt.
        $decoy = Join-Path $TestHome 'attacker'
        Copy-Item -Recurse $Saved.Path $decoy
        $page = Get-ChildItem (Join-Path $decoy 'images') | Sort-Object Length -Descending | Select-Object -First 1
        $bytes = [IO.File]::ReadAllBytes($page.FullName)
        $bytes[$bytes.Length / 2] = $bytes[$bytes.Length / 2] -bxor 0xff
        [IO.File]::WriteAllBytes($page.FullName, $bytes)
        chown -R $Attacker $decoy
        $swap = 'end=$(($(date +%s) + 120)); while [ $(date +%s) -lt $end ]; do ' +
            'mv -T "$1" "$1.real" 2>/dev/null && ln -s "$2" "$1" 2>/dev/null; sleep 0.005; ' +
            'rm -f "$1" 2>/dev/null; mv -T "$1.real" "$1" 2>/dev/null; done'
        $start = [Diagnostics.ProcessStartInfo]::new('runuser')
        foreach ($argument in '-u', $Attacker, '--', 'sh', '-c', $swap, 'sh', $target, $decoy) { $start.ArgumentList.Add($argument) }
        $attack = [Diagnostics.Process]::Start($start)
        $outcomes = @{ Restored = 0; Refused = 0 }
        try {
            foreach ($i in 1..20) {
                chmod $(if ($i % 2) { '0777' } else { '1777' }) $race
                try {
                    $restored = $checkpoint | Restore-EngineCheckpoint -Name "race-$i" -ErrorAction Stop
                }
                catch {
                    $_.FullyQualifiedErrorId | Should -Be $RestoreInsecure
                    $outcomes.Refused++
                    continue
                }

                (Invoke-EngineGenerate -Engine $restored -Prompt $Prompt -MaxTokens 16).Text | Should -Be $Before
                $restored | Stop-VllmEngine -Confirm:$false
                $outcomes.Restored++
            }
        }
        finally {
            $attack.Kill($true)
            $attack.WaitForExit()
        }

        Write-Host "race: $($outcomes.Restored) restored root's images, $($outcomes.Refused) refused (CheckpointInsecure)"
        $outcomes.Restored + $outcomes.Refused | Should -Be 20
        $outcomes.Refused | Should -BeGreaterThan 0
    }

    It 'creates nothing on the host for a run_directory outside the registry: <Case>' -ForEach @(
        @{ Case = 'another root'; Elsewhere = 'elsewhere'; Id = 'CheckpointInsecure' }
        @{ Case = 'a path with ..'; Elsewhere = 'engines/../elsewhere'; Id = 'CheckpointCorrupt' }
    ) {
        $copy = Copy-Checkpoint (Join-Path $TestHome "hostile-$($Elsewhere.Length)")
        $manifestPath = Join-Path $copy 'manifest.json'
        $recorded = $Saved.Manifest.RunDirectory
        $hostile = Join-Path $TestHome $Elsewhere 'engines' (Split-Path -Leaf $recorded)
        Set-Content -LiteralPath $manifestPath -Value (Get-Content -Raw -LiteralPath $manifestPath).Replace("`"$recorded`"", "`"$hostile`"") -NoNewline
        $enginesBefore = @(Get-ChildItem -Force (Join-Path $TestHome 'engines') -ErrorAction Ignore).Count

        { Restore-EngineCheckpoint -Path $copy -ErrorAction Stop } |
            Should -Throw -ErrorId "$Id,CriuCheckpoint.Commands.RestoreEngineCheckpointCommand"
        Test-Path (Join-Path $TestHome 'elsewhere') | Should -BeFalse
        @(Get-ChildItem -Force (Join-Path $TestHome 'engines') -ErrorAction Ignore).Count | Should -Be $enginesBefore
    }
}
