# Shared by the Pester suites: dot-source in BeforeAll. Every engine a test starts is stopped by PID.

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ModuleManifest = Join-Path $RepoRoot 'out/CriuCheckpoint/CriuCheckpoint.psd1'

Import-Module $ModuleManifest -Force

# A private registry per test file, so tests see only their own engines and leave nothing in the host's.
function New-TestHome {
    $dir = Join-Path ([IO.Path]::GetTempPath()) ("criu-pester-" + [guid]::NewGuid().ToString('N').Substring(0, 8))
    New-Item -ItemType Directory $dir | Out-Null
    $env:CRIUCHECKPOINT_HOME = $dir
    $dir
}

# Processes whose command line names this test home: engines started (or leaked) by these tests.
function Get-TestHomeProcess([string] $TestHome) {
    foreach ($dir in Get-ChildItem /proc -Directory | Where-Object Name -Match '^\d+$') {
        $cmdline = Get-Content -Raw -LiteralPath "$($dir.FullName)/cmdline" -ErrorAction Ignore
        $stat = Get-Content -Raw -LiteralPath "$($dir.FullName)/stat" -ErrorAction Ignore
        if ($cmdline -and $cmdline.Contains($TestHome) -and $stat -and $stat -notmatch '\) [ZX] ') {
            [int]$dir.Name
        }
    }
}

function Test-ProcessAlive([int] $ProcessId) {
    $stat = Get-Content -Raw -LiteralPath "/proc/$ProcessId/stat" -ErrorAction Ignore
    [bool]($stat -and $stat -notmatch '\) [ZX] ')
}

# Teardown: stop by PID whatever this test home still has running, then remove the home.
function Remove-TestHome([string] $TestHome) {
    foreach ($processId in @(Get-TestHomeProcess $TestHome)) {
        Stop-Process -Id $processId -Force -ErrorAction Ignore
    }
    Remove-Item -LiteralPath $TestHome -Recurse -Force -ErrorAction Ignore
    Remove-Item Env:CRIUCHECKPOINT_HOME -ErrorAction Ignore
}

# A second pwsh, the way a user opens a new session.
function Invoke-ChildPwsh([string] $Command) {
    $pwsh = Get-Command pwsh -CommandType Application -ErrorAction Ignore
    if ($pwsh) {
        & $pwsh.Source -NoProfile -NonInteractive -Command $Command
    }
    else {
        Push-Location $RepoRoot
        try { & dotnet pwsh -NoProfile -NonInteractive -Command $Command } finally { Pop-Location }
    }
}

# Runs a command in a separate runspace so a test can press Ctrl+C on it (PowerShell.Stop) mid-flight.
function Start-Stoppable([scriptblock] $Script, [hashtable] $Parameters = @{}) {
    $ps = [powershell]::Create()
    $null = $ps.AddScript("Import-Module '$ModuleManifest'; `$env:CRIUCHECKPOINT_HOME = '$env:CRIUCHECKPOINT_HOME'").AddStatement()
    $null = $ps.AddScript($Script.ToString())
    foreach ($key in $Parameters.Keys) { $null = $ps.AddParameter($key, $Parameters[$key]) }
    [pscustomobject]@{ PowerShell = $ps; Handle = $ps.BeginInvoke() }
}
