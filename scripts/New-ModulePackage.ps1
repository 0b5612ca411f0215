#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Packs the built module folder into a .nupkg that Publish-PSResource, Install-PSResource and Save-PSResource take.
.DESCRIPTION
    The package is the module folder as built (out/CriuCheckpoint), packed by PSResourceGet's Compress-PSResource,
    which writes the .nuspec from the module manifest. Before packing, it checks what redistributing the folder
    requires, and throws listing every problem: LICENSE and THIRD-PARTY-NOTICES.txt at the root, every assembly
    other than the module's own named in the notices, and CRIU in tools/criu with a copyright file for every Debian
    package it was unpacked from (scripts/install-criu.sh keeps them in tools/criu/licenses). Each file keeps its
    Unix mode in the package, so CRIU stays executable once installed.

    Outputs the .nupkg (a FileInfo), named <module>.<version>.nupkg; a package of the same version in -OutputPath
    is replaced.
.EXAMPLE
    ./scripts/New-ModulePackage.ps1 -ModulePath out/CriuCheckpoint -OutputPath out/package
#>
[CmdletBinding()]
[OutputType([System.IO.FileInfo])]
param(
    # The built module folder: its name is the module's, and it holds <name>.psd1.
    [Parameter(Mandatory)]
    [string] $ModulePath,

    # The folder the .nupkg is written to; created when missing.
    [Parameter(Mandatory)]
    [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Get-RedistributionProblem([string] $Folder) {
    foreach ($required in 'LICENSE', 'THIRD-PARTY-NOTICES.txt') {
        if (-not (Test-Path -LiteralPath (Join-Path $Folder $required) -PathType Leaf)) { "$required is missing." }
    }
    $notices = Get-Content -Raw -LiteralPath (Join-Path $Folder 'THIRD-PARTY-NOTICES.txt') -ErrorAction Ignore
    foreach ($assembly in Get-ChildItem -LiteralPath $Folder -Filter '*.dll' | Where-Object Name -NotLike 'CriuCheckpoint.*') {
        if (-not $notices -or -not $notices.Contains($assembly.Name)) { "$($assembly.Name) is not named in THIRD-PARTY-NOTICES.txt." }
    }
    $criu = Join-Path $Folder 'tools/criu'
    if (-not (Test-Path -LiteralPath (Join-Path $criu 'PACKAGES'))) {
        'tools/criu is missing or has no PACKAGES: the module ships CRIU (build.ps1 deps installs it).'
        return
    }
    foreach ($debianPackage in Get-Content -LiteralPath (Join-Path $criu 'PACKAGES')) {
        $name = ($debianPackage -split '=')[0]
        if (-not (Test-Path -LiteralPath (Join-Path $criu "licenses/$name.copyright"))) {
            "tools/criu/licenses/$name.copyright is missing (scripts/install-criu.sh keeps it)."
        }
    }
    if (-not (Test-Path -LiteralPath (Join-Path $criu 'licenses/SOURCES'))) { 'tools/criu/licenses/SOURCES is missing.' }
}

# Compress-PSResource stores every file as 0644, so CRIU's wrapper and loader would lose their execute bits. Save- and
# Install-PSResource give an extracted file the Unix mode its zip entry carries: each entry gets its file's mode.
function Copy-UnixFileMode([string] $Package, [string] $Folder) {
    $zip = [System.IO.Compression.ZipFile]::Open($Package, [System.IO.Compression.ZipArchiveMode]::Update)
    try {
        foreach ($entry in $zip.Entries) {
            $file = Join-Path $Folder ([uri]::UnescapeDataString($entry.FullName))
            if (Test-Path -LiteralPath $file -PathType Leaf) {
                $regularFile = 0x8000
                $entry.ExternalAttributes = ($regularFile -bor [int][System.IO.File]::GetUnixFileMode($file)) -shl 16
            }
        }
    }
    finally {
        $zip.Dispose()
    }
}

$ModulePath = (Resolve-Path -LiteralPath $ModulePath).Path
$problems = @(Get-RedistributionProblem $ModulePath)
if ($problems) {
    throw "$ModulePath cannot be packaged:`n  $($problems -join "`n  ")"
}

$name = Split-Path -Leaf $ModulePath
$version = (Import-PowerShellDataFile -LiteralPath (Join-Path $ModulePath "$name.psd1")).ModuleVersion
New-Item -ItemType Directory -Force $OutputPath | Out-Null
$package = Join-Path (Resolve-Path -LiteralPath $OutputPath).Path "$name.$version.nupkg"
Remove-Item -LiteralPath $package -ErrorAction Ignore
Import-Module Microsoft.PowerShell.PSResourceGet
Add-Type -AssemblyName System.IO.Compression.ZipFile
Compress-PSResource -Path $ModulePath -DestinationPath (Split-Path $package)
Copy-UnixFileMode $package $ModulePath
Get-Item -LiteralPath $package
