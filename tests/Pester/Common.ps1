# Shared by the Pester suites: dot-source in BeforeAll. Every engine a test starts is stopped by PID.

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ModuleManifest = Join-Path $RepoRoot 'out/CriuCheckpoint/CriuCheckpoint.psd1'

Import-Module $ModuleManifest -Force

# The criu the module itself would find first: $env:CRIU_PATH, else the one shipped in its tools folder.
$script:RealCriu = if ($env:CRIU_PATH) { $env:CRIU_PATH } else { Join-Path (Split-Path $ModuleManifest) 'tools/criu/bin/criu' }

# A private registry per test file, so tests see only their own engines and leave nothing in the host's.
function New-TestHome {
    $dir = Join-Path ([IO.Path]::GetTempPath()) ("criu-pester-" + [guid]::NewGuid().ToString('N').Substring(0, 8))
    New-Item -ItemType Directory $dir | Out-Null
    $env:CRIUCHECKPOINT_HOME = $dir
    $dir
}

# Processes whose command line names this test home: engines started (or leaked) by these tests. An empty name
# would match every process of the host.
function Get-TestHomeProcess([ValidateNotNullOrEmpty()][string] $TestHome) {
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
function Remove-TestHome([ValidateNotNullOrEmpty()][string] $TestHome) {
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

# Runs a command in a separate runspace (same process, so same environment) so a test can press Ctrl+C on it
# (PowerShell.Stop) mid-flight, or run two at once. Dispose with Stop-Stoppable.
function Start-Stoppable([scriptblock] $Script, [hashtable] $Parameters = @{}) {
    $state = [initialsessionstate]::CreateDefault2()
    $state.ImportPSModule($ModuleManifest)
    $runspace = [runspacefactory]::CreateRunspace($state)
    $runspace.Open()
    $ps = [powershell]::Create($runspace)
    $null = $ps.AddScript($Script.ToString()).AddParameters($Parameters)
    [pscustomobject]@{ PowerShell = $ps; Runspace = $runspace; Handle = $ps.BeginInvoke() }
}

function Stop-Stoppable($Run) {
    $Run.PowerShell.Stop()
    $Run.PowerShell.Dispose()
    $Run.Runspace.Dispose()
}

# Mounts a test could leak: anything under the test home, or a restore's private tmpfs left on the host.
function Get-TestHomeMount([string] $TestHome) {
    Get-Content /proc/self/mountinfo | Where-Object { $_.Contains($TestHome) -or $_ -match ' criu-checkpoint ' }
}

# Nothing a test started may outlive it: no process, no mount, no staging directory.
function Assert-NothingLeft([string] $TestHome, [string] $Store) {
    Get-TestHomeProcess $TestHome | Should -BeNullOrEmpty
    Get-TestHomeMount $TestHome | Should -BeNullOrEmpty
    if ($Store -and (Test-Path $Store)) {
        Get-ChildItem -Force $Store -Filter '.staging-*' | Should -BeNullOrEmpty
    }
}

# Runs a copy of criu that a test controls: $Script runs instead of criu for the given subcommand.
function New-CriuWrapper([string] $Directory, [string] $Name, [string] $Script) {
    $path = Join-Path $Directory $Name
    Set-Content -LiteralPath $path -Value "#!/bin/sh`n$Script`n"
    chmod +x $path
    $path
}

# What an engine's link answers a pyzmq client (tests/Pester/link_client.py): a hashtable of each op sent to its final
# or error reply, $null where none came within -TimeoutSec. -Keys: a run directory whose keys the client uses;
# -ServerKey: that server key and a client key the engine never issued; neither: no CURVE. -Prefix runs the client
# through a command (setpriv, as another user), which is given the script's text, not its path.
function Invoke-LinkClient {
    param(
        [string] $Endpoint,
        [string[]] $Op,
        [string] $Keys,
        [string] $ServerKey,
        [double] $TimeoutSec = 2,
        [string[]] $Prefix = @()
    )
    $python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { '/usr/bin/python3' }
    $script = Get-Content -Raw (Join-Path $RepoRoot 'tests/Pester/link_client.py')
    $command = @($Prefix) + @($python, '-c', $script, $Endpoint, '--timeout', "$TimeoutSec")
    if ($Keys) { $command += '--keys', $Keys }
    if ($ServerKey) { $command += '--server-key', $ServerKey }
    $command += $Op
    $output = & $command[0] @($command | Select-Object -Skip 1)
    if ($LASTEXITCODE -ne 0) { throw "link_client.py exited with $LASTEXITCODE." }
    $output | ConvertFrom-Json -AsHashtable
}

# The keys a run directory holds now, copied into $Destination: what the owner held before an engine got new ones.
function Copy-LinkKeys([string] $RunDirectory, [string] $Destination) {
    New-Item -ItemType Directory $Destination | Out-Null
    Copy-Item (Join-Path $RunDirectory 'server.public'), (Join-Path $RunDirectory 'client.secret') $Destination
    $Destination
}
