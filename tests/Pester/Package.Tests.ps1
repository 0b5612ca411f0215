# The package as a user gets it: packed from the built module folder by scripts/New-ModulePackage.ps1 (what
# 'build.ps1 package' runs), published to a PSResource repository of this test's own, installed with Save-PSResource
# into a temporary folder and imported in a new pwsh.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $ErrorActionPreference = 'Stop'
    Add-Type -AssemblyName System.IO.Compression.ZipFile

    $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('criu-package-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
    $script:Repository = 'CriuCheckpointTest-' + (Split-Path -Leaf $Work)
    $feed = New-Item -ItemType Directory (Join-Path $Work 'feed')
    $script:Version = (Import-PowerShellDataFile $ModuleManifest).ModuleVersion
    $script:Package = & (Join-Path $RepoRoot 'scripts/New-ModulePackage.ps1') -ModulePath (Split-Path $ModuleManifest) -OutputPath (Join-Path $Work 'build')
    Register-PSResourceRepository -Name $Repository -Uri $feed.FullName -Trusted
    Publish-PSResource -NupkgPath $Package.FullName -Repository $Repository
    $modules = New-Item -ItemType Directory (Join-Path $Work 'modules')
    Save-PSResource -Name CriuCheckpoint -Version $Version -Repository $Repository -Path $modules.FullName -TrustRepository
    $script:Installed = Join-Path $Work "modules/CriuCheckpoint/$Version"

    $zip = [System.IO.Compression.ZipFile]::OpenRead($Package.FullName)
    try {
        $script:Entries = @($zip.Entries | ForEach-Object { [uri]::UnescapeDataString($_.FullName) })
        $readEntry = { param($Name) $reader = [IO.StreamReader]::new($zip.GetEntry($Name).Open()); try { $reader.ReadToEnd() } finally { $reader.Dispose() } }
        $script:Notices = & $readEntry 'THIRD-PARTY-NOTICES.txt'
        $script:License = & $readEntry 'LICENSE'
        $script:CriuPackages = @((& $readEntry 'tools/criu/PACKAGES') -split "`n" | Where-Object { $_ } | ForEach-Object { ($_ -split '=')[0] })
        $script:CriuSources = @((& $readEntry 'tools/criu/licenses/SOURCES') -split "`n" | Where-Object { $_ })
    }
    finally {
        $zip.Dispose()
    }

    # Runs $Command in a new pwsh that has imported the installed package, and returns what it wrote as JSON.
    function Invoke-InstalledModule([string] $Command) {
        $output = Invoke-ChildPwsh @"
`$ProgressPreference = 'SilentlyContinue'
Remove-Item Env:CRIU_PATH -ErrorAction Ignore
Import-Module '$Installed/CriuCheckpoint.psd1'
& { $Command } | ConvertTo-Json -Compress -Depth 3
"@
        $LASTEXITCODE | Should -Be 0 -Because "the new pwsh wrote: $output"
        @($output)[-1] | ConvertFrom-Json
    }
}

AfterAll {
    Remove-TestHome $TestHome
    if ($Repository) { Unregister-PSResourceRepository -Name $Repository -ErrorAction Ignore }
    if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction Ignore }
}

Describe 'The CriuCheckpoint package' {
    It 'is named after the module and its version' {
        $Package.Name | Should -Be "CriuCheckpoint.$Version.nupkg"
    }

    It 'holds the module''s assemblies and their dependencies, but none that PowerShell provides' {
        foreach ($assembly in 'CriuCheckpoint.Cmdlets.dll', 'NetMQ.dll', 'AsyncIO.dll', 'NaCl.dll', 'MessagePack.dll', 'CliWrap.dll') {
            $Entries | Should -Contain $assembly
        }
        $Entries | Should -Not -Contain 'System.Management.Automation.dll'
        $Entries | Where-Object { $_ -like 'System.ServiceModel.*' -or $_ -like 'System.Collections.Immutable.*' -or $_ -like 'System.Security.Cryptography.*' } |
            Should -BeNullOrEmpty
    }

    It 'holds the engine host, the help and the views, without Python caches' {
        foreach ($file in 'CriuCheckpoint.psd1', 'CriuCheckpoint.format.ps1xml', 'en-US/CriuCheckpoint.Cmdlets.dll-Help.xml',
            'en-US/about_CriuCheckpoint.help.txt', 'EngineHost/engine_host/__main__.py', 'EngineHost/engine_host/backends/tiny.py') {
            $Entries | Should -Contain $file
        }
        $Entries | Where-Object { $_ -like '*__pycache__*' } | Should -BeNullOrEmpty
    }

    It 'has the MIT LICENSE at its root, and notices that name every assembly it redistributes' {
        $License | Should -Match '^MIT License'
        $Entries | Should -Contain 'THIRD-PARTY-NOTICES.txt'
        $thirdParty = @($Entries | Where-Object { $_ -like '*.dll' -and $_ -notlike '*/*' -and $_ -notlike 'CriuCheckpoint.*' })
        $thirdParty.Count | Should -BeGreaterThan 0
        foreach ($assembly in $thirdParty) {
            $Notices.Contains($assembly) | Should -BeTrue -Because "THIRD-PARTY-NOTICES.txt should name $assembly"
        }
    }

    It 'holds every licence text the notices point to' {
        $licenseFiles = @([regex]::Matches($Notices, '(?<![/\w])licenses/[\w.+-]*\w') | ForEach-Object Value | Select-Object -Unique)
        $licenseFiles | Should -Contain 'licenses/NetMQ-LGPL-3.0-with-exception.txt'
        foreach ($file in $licenseFiles) {
            $Entries | Should -Contain $file
        }
    }

    It 'holds the Debian copyright file and the source of every package CRIU was unpacked from' {
        $CriuPackages | Should -Contain 'criu'
        $CriuPackages | Should -Contain 'libc6'
        foreach ($debianPackage in $CriuPackages) {
            $Entries | Should -Contain "tools/criu/licenses/$debianPackage.copyright"
        }
        @($CriuSources | ForEach-Object { ($_ -split ' ')[0] }) | Sort-Object | Should -Be ($CriuPackages | Sort-Object)
        $Entries | Should -Contain 'tools/criu/licenses/common-licenses/GPL-2'
    }

    It 'installs with CRIU''s wrapper and loader executable' {
        foreach ($program in 'tools/criu/bin/criu', 'tools/criu/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2') {
            $mode = [IO.File]::GetUnixFileMode((Join-Path $Installed $program))
            $mode.HasFlag([IO.UnixFileMode]::UserExecute) | Should -BeTrue -Because "$program should be executable once installed"
        }
    }

    It 'imports in a new pwsh and exports every cmdlet its manifest lists' {
        $imported = Invoke-InstalledModule '[pscustomobject]@{ Base = (Get-Module CriuCheckpoint).ModuleBase; Cmdlets = @((Get-Command -Module CriuCheckpoint).Name) }'
        $imported.Base | Should -Be $Installed
        $listed = (Import-PowerShellDataFile (Join-Path $Installed 'CriuCheckpoint.psd1')).CmdletsToExport
        @($imported.Cmdlets | Sort-Object) | Should -Be @($listed | Sort-Object)
    }

    It 'runs the CRIU it ships, and an engine over NetMQ, in an empty CRIUCHECKPOINT_HOME' {
        $ran = Invoke-InstalledModule @'
$before = @(Get-VllmEngine).Count
$support = Test-EngineCheckpointSupport
$engine = Start-VllmEngine -Model tiny-16m -Name package-tiny -ReadyTimeout 120
try { $answer = Invoke-EngineGenerate -Engine $engine -Prompt 'Once upon a time' -MaxTokens 4 }
finally { Stop-VllmEngine -Engine $engine }
[pscustomobject]@{ Before = $before; CriuPath = $support.CriuPath; CriuVersion = $support.CriuVersion; Tokens = $answer.CompletionTokens; After = @(Get-VllmEngine).Count }
'@
        $ran.Before | Should -Be 0
        $ran.CriuPath | Should -Be (Join-Path $Installed 'tools/criu/bin/criu')
        [version]$ran.CriuVersion | Should -BeGreaterOrEqual ([version]'4.2')
        $ran.Tokens | Should -BeGreaterThan 0
        $ran.After | Should -Be 0
        Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    }
}

Describe 'scripts/New-ModulePackage.ps1' {
    It 'refuses a module folder with an assembly its notices do not name, or without CRIU' {
        $folder = New-Item -ItemType Directory (Join-Path $Work 'refused/CriuCheckpoint')
        Copy-Item (Join-Path (Split-Path $ModuleManifest) '*') $folder -Include 'CriuCheckpoint.psd1', 'LICENSE', 'THIRD-PARTY-NOTICES.txt'
        Set-Content (Join-Path $folder 'Unlisted.dll') -Value ''
        { & (Join-Path $RepoRoot 'scripts/New-ModulePackage.ps1') -ModulePath $folder -OutputPath (Join-Path $Work 'refused/out') } |
            Should -Throw -ExpectedMessage '*Unlisted.dll is not named in THIRD-PARTY-NOTICES.txt.*tools/criu is missing*'
        Join-Path $Work 'refused/out' | Should -Not -Exist
    }
}
