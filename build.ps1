#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds, tests, demonstrates, benchmarks and packages the CriuCheckpoint module.
.DESCRIPTION
    Tasks (each runs what it needs first):
      deps     apt packages (python3-zmq, python3-msgpack, python3-numpy, python3-pytest, python3-flake8,
               python3-setproctitle, OpenBLAS), CRIU into tools/criu with its licences (scripts/install-criu.sh:
               4.3 from Debian experimental where it passes 'criu check', else 4.2.1), NuGet, Pester
      build    compiles the module and assembles it in out/CriuCheckpoint
      test     xunit, pytest, Pester and flake8 (lint); ends with one line 'N passed, N failed'.
               -Suite picks some of them, -Filter runs only the tests whose name contains a text
      demo     start an engine, generate, stop, printing timings
      bench    measured figures of the tiny CPU engine, printed with their ratios; where an NVIDIA GPU and torch are
               present, then the GPU benchmark (bench/gpu-bench.ps1: floor, 8B restore, KV-in-image baseline, levers)
      package  out/package/CriuCheckpoint.<version>.nupkg, packed from out/CriuCheckpoint by
               scripts/New-ModulePackage.ps1 (PSResourceGet's Compress-PSResource): the module's assemblies and the
               dependencies PowerShell does not provide, the engine host, help, views, CRIU, LICENSE and the
               third-party notices. Publish it with Publish-PSResource -NupkgPath.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 test
.EXAMPLE
    dotnet pwsh ./build.ps1 test -Suite Unit, Engine -Filter Backend
.EXAMPLE
    dotnet pwsh ./build.ps1 package
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('deps', 'build', 'test', 'demo', 'bench', 'package')]
    [string] $Task = 'build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # test: the suites to run.
    [ValidateSet('Unit', 'Engine', 'Pester', 'Lint')]
    [string[]] $Suite = @('Unit', 'Engine', 'Pester', 'Lint'),

    # test: only the tests whose full name contains this text (xunit, pytest -k, Pester), the Python files whose
    # path contains it (lint).
    [string] $Filter
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$ModuleOut = Join-Path $Root 'out/CriuCheckpoint'
$PackageOut = Join-Path $Root 'out/package'
$PesterVersion = '6.2.0'
$CriuPrefix = Join-Path $Root 'tools/criu'
# OpenBLAS: numpy on Debian otherwise multiplies with the reference BLAS, about 15x slower. setproctitle: the vLLM test
# double titles its processes with it, as vLLM (which depends on it) does.
$AptPackages = 'python3-zmq', 'python3-msgpack', 'python3-numpy', 'python3-pytest', 'python3-flake8', 'python3-setproctitle', 'libopenblas0-pthread'

function Invoke-Native {
    param([string] $Command, [string[]] $Arguments)
    & $Command @Arguments
    if ($LASTEXITCODE -ne 0) { throw "'$Command $($Arguments -join ' ')' exited with code $LASTEXITCODE." }
}

function Install-Deps {
    $missing = @($AptPackages | Where-Object { -not (& dpkg-query -W -f '${Status}' $_ 2>$null | Select-String -Quiet 'install ok installed') })
    if ($missing) {
        Write-Host "deps: apt-get install $($missing -join ' ')"
        $env:DEBIAN_FRONTEND = 'noninteractive'
        Invoke-Native apt-get @('update', '-qq')
        Invoke-Native apt-get (@('install', '-y', '-qq', '--no-install-recommends') + $missing)
    }
    Invoke-Native dotnet @('restore', (Join-Path $Root 'CriuCheckpoint.sln'), '--verbosity', 'quiet')
    Invoke-Native dotnet @('restore', (Join-Path $Root 'tests/Pester/Pester.Dependencies.csproj'), '--verbosity', 'quiet')
    Invoke-Native bash @((Join-Path $Root 'scripts/install-criu.sh'), $CriuPrefix)
    Set-EnginePython
}

# The engine host needs pyzmq, msgpack and numpy: Debian installs them for /usr/bin/python3, which may not be
# the python3 first on PATH (pyenv). Tests and demos use the first interpreter that has them.
function Set-EnginePython {
    if ($env:CRIUCHECKPOINT_PYTHON) { return }
    $candidates = @((Get-Command python3 -All -CommandType Application -ErrorAction Ignore).Source) + '/usr/bin/python3'
    foreach ($python in $candidates | Select-Object -Unique) {
        & $python -c 'import zmq, msgpack, numpy' 2>$null
        if ($LASTEXITCODE -eq 0) {
            $env:CRIUCHECKPOINT_PYTHON = $python
            Write-Host "deps: engine Python is $python"
            return
        }
    }
    throw 'No python3 can import zmq, msgpack and numpy; install python3-zmq python3-msgpack python3-numpy.'
}

function Get-PesterModule {
    $nugetRoot = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    Join-Path $nugetRoot "pester/$PesterVersion/tools/Pester.psd1"
}

function Invoke-Build {
    Invoke-Native dotnet @('build', (Join-Path $Root 'CriuCheckpoint.sln'), '-c', $Configuration, '--nologo', '--verbosity', 'quiet', '--no-restore')
    $bin = Join-Path $Root "src/CriuCheckpoint.Cmdlets/bin/$Configuration/net8.0"
    if (Test-Path $ModuleOut) { Remove-Item $ModuleOut -Recurse -Force }
    New-Item -ItemType Directory $ModuleOut | Out-Null
    Copy-Item (Join-Path $bin '*.dll'), (Join-Path $bin 'EngineHost') $ModuleOut -Recurse
    Copy-Item (Join-Path $Root 'module/*') $ModuleOut -Recurse -Exclude 'EngineHost'
    Copy-Item (Join-Path $Root 'LICENSE'), (Join-Path $Root 'THIRD-PARTY-NOTICES.txt'), (Join-Path $Root 'licenses') $ModuleOut -Recurse
    if (Test-Path $CriuPrefix) {
        # The module finds criu in its own tools folder, so the built module works without CRIU_PATH.
        New-Item -ItemType Directory (Join-Path $ModuleOut 'tools') | Out-Null
        Copy-Item $CriuPrefix (Join-Path $ModuleOut 'tools/criu') -Recurse
    }
    # Get-Help for the binary cmdlets: MAML from the built DLL + docs/cmdlets/*.md (about_*.help.txt came with module/en-US).
    $helpFile = & (Join-Path $Root 'scripts/New-MamlHelp.ps1') -AssemblyPath (Join-Path $ModuleOut 'CriuCheckpoint.Cmdlets.dll') -DocsPath (Join-Path $Root 'docs/cmdlets') -OutputPath (Join-Path $ModuleOut 'en-US')
    Write-Host "build: help written to $helpFile"
    Get-ChildItem $ModuleOut -Recurse -Directory -Filter '__pycache__' | Remove-Item -Recurse -Force
    Write-Host "build: module assembled in $ModuleOut"
}

function Invoke-UnitSuite {
    param([string] $ResultsDir)
    # A filter without an operator is dotnet test's 'FullyQualifiedName contains'.
    $filterArgs = if ($Filter) { '--filter', $Filter } else { @() }
    & dotnet test (Join-Path $Root 'tests/Unit/CriuCheckpoint.Tests.csproj') -c $Configuration --no-build --nologo `
        --logger 'trx;LogFileName=unit.trx' --results-directory $ResultsDir @filterArgs | Out-Host
    $counters = ([xml](Get-Content (Join-Path $ResultsDir 'unit.trx') -Raw)).TestRun.ResultSummary.Counters
    @{ Passed = [int]$counters.passed; Failed = [int]$counters.failed + [int]$counters.error }
}

function Invoke-EngineSuite {
    param([string] $ResultsDir)
    $report = Join-Path $ResultsDir 'pytest.xml'
    $filterArgs = if ($Filter) { '-k', $Filter } else { @() }
    & $env:CRIUCHECKPOINT_PYTHON -m pytest (Join-Path $Root 'tests/Engine') -q -p no:cacheprovider --junitxml $report @filterArgs | Out-Host
    $suite = ([xml](Get-Content $report -Raw)).testsuites.testsuite
    @{ Passed = [int]$suite.tests - [int]$suite.failures - [int]$suite.errors - [int]$suite.skipped; Failed = [int]$suite.failures + [int]$suite.errors }
}

function Invoke-PesterSuite {
    Import-Module (Get-PesterModule) -Force
    $config = New-PesterConfiguration
    $config.Run.Path = Join-Path $Root 'tests/Pester'
    $config.Run.PassThru = $true
    $config.Output.Verbosity = 'Detailed'
    if ($Filter) { $config.Filter.FullName = "*$Filter*" }
    $pester = Invoke-Pester -Configuration $config
    @{ Passed = $pester.PassedCount; Failed = $pester.FailedCount + $pester.FailedBlocksCount + $pester.FailedContainersCount }
}

function Get-LintedFiles {
    $folders = 'module/EngineHost', 'tests/Engine' | ForEach-Object { Join-Path $Root $_ }
    # bench/ and tests/Unit/ only at their top: below tests/Unit are build outputs with a copy of the engine host.
    $topLevel = 'bench', 'tests/Unit' | ForEach-Object { Join-Path $Root $_ }
    $files = @(Get-ChildItem $folders -Recurse -File -Filter '*.py') + @(Get-ChildItem $topLevel -File -Filter '*.py')
    $files | Where-Object { -not $Filter -or $_.FullName -like "*$Filter*" }
}

# Counted per file, as pytest counts tests: a file flake8 finds nothing in passed, a file with findings failed.
function Invoke-LintSuite {
    $files = @(Get-LintedFiles | ForEach-Object FullName)
    # flake8 given no file checks the current folder instead.
    if (-not $files) { return @{ Passed = 0; Failed = 0 } }
    $findings = @(& $env:CRIUCHECKPOINT_PYTHON -m flake8 --config (Join-Path $Root '.flake8') @files)
    $findings | Write-Host
    $failedFiles = @($findings | ForEach-Object { ($_ -split ':', 2)[0] } | Select-Object -Unique)
    if ($LASTEXITCODE -ne 0 -and -not $failedFiles) { throw "flake8 exited with code $LASTEXITCODE and no findings." }
    @{ Passed = $files.Count - $failedFiles.Count; Failed = $failedFiles.Count }
}

function Invoke-Tests {
    $trxDir = Join-Path $Root 'out/test-results'
    if (Test-Path $trxDir) { Remove-Item $trxDir -Recurse -Force }
    New-Item -ItemType Directory $trxDir | Out-Null

    $results = [ordered]@{}
    if ('Unit' -in $Suite) { $results.xunit = Invoke-UnitSuite -ResultsDir $trxDir }
    if ('Engine' -in $Suite) { $results.pytest = Invoke-EngineSuite -ResultsDir $trxDir }
    if ('Pester' -in $Suite) { $results.pester = Invoke-PesterSuite }
    if ('Lint' -in $Suite) { $results.lint = Invoke-LintSuite }

    foreach ($suiteName in $results.Keys) {
        Write-Host ("{0,-7} {1} passed, {2} failed" -f $suiteName, $results[$suiteName].Passed, $results[$suiteName].Failed)
    }
    $passed = ($results.Values | Measure-Object -Property Passed -Sum).Sum
    $failed = ($results.Values | Measure-Object -Property Failed -Sum).Sum
    Write-Host "$passed passed, $failed failed"
    if ($failed -gt 0) { exit 1 }
}

function Invoke-Package {
    $package = & (Join-Path $Root 'scripts/New-ModulePackage.ps1') -ModulePath $ModuleOut -OutputPath $PackageOut
    Write-Host "package: $($package.FullName)"
}

switch ($Task) {
    'deps' { Install-Deps }
    'build' { Install-Deps; Invoke-Build }
    'test' {
        Install-Deps
        # pytest and flake8 read the Python sources; only xunit and Pester need the compiled module.
        if ($Suite -contains 'Unit' -or $Suite -contains 'Pester') { Invoke-Build }
        Invoke-Tests
    }
    'demo' { Install-Deps; Invoke-Build; & (Join-Path $Root 'scripts/demo.ps1') -ModulePath $ModuleOut }
    'bench' {
        Install-Deps; Invoke-Build
        & (Join-Path $Root 'bench/bench.ps1') -ModulePath $ModuleOut
        # The GPU benchmark needs an NVIDIA GPU and torch in the engine's Python (scripts/gpu/bench.sh on a GPU host).
        if ((Test-Path /dev/nvidia0) -and $(& $env:CRIUCHECKPOINT_PYTHON -c 'import torch; assert torch.cuda.is_available()' 2>$null; $LASTEXITCODE -eq 0)) {
            & (Join-Path $Root 'bench/gpu-bench.ps1') -ModulePath $ModuleOut
        }
    }
    'package' { Install-Deps; Invoke-Build; Invoke-Package }
}
