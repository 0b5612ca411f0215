# The help's examples cannot drift from the module: every Get-Help example whose explanation says "This example runs
# as shown." (or "... as shown with an engine named my-engine running.") is run verbatim, as a user would paste it,
# in a fresh pwsh with its own registry and working folder, against the tiny CPU engine, and must end without an
# error. The engine named my-engine is started first where the example says so; whatever is left running is stopped
# by PID after it.

BeforeDiscovery {
    $module = Import-Module (Join-Path $PSScriptRoot '../../out/CriuCheckpoint/CriuCheckpoint.psd1') -PassThru -Force
    $script:Examples = foreach ($name in $module.ExportedCmdlets.Keys | Sort-Object) {
        foreach ($example in @((Get-Help $name -Full).examples.example | Where-Object { $_ })) {
            $remarks = @($example.remarks | ForEach-Object Text) -join "`n"
            if ($remarks -match 'This example runs as shown( with an engine named my-engine running)?\.') {
                @{ Cmdlet = $name; Title = ($example.title -replace '^[-\s]+|[-\s]+$'); Code = "$($example.code)"; NeedsEngine = [bool]$Matches[1] }
            }
        }
    }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')

    # The example in a new pwsh (the help's reader has a fresh session), bounded so a hung example fails the test
    # instead of the whole run; the exit code says whether it ended in an error or wrote one.
    function Invoke-Example([string] $Code, [string] $WorkingDirectory, [int] $TimeoutSeconds = 240) {
        $pwsh = (Get-Command pwsh -CommandType Application -ErrorAction Ignore).Source
        $start = if ($pwsh) { [Diagnostics.ProcessStartInfo]::new($pwsh) } else { [Diagnostics.ProcessStartInfo]::new('dotnet') }
        if (-not $pwsh) { $start.ArgumentList.Add('pwsh') }
        # Errors the example catches itself are part of what it shows; only those written to the error stream count.
        $script = @"
Import-Module '$ModuleManifest'
`$written = 0
. {
$Code
} 2>&1 | ForEach-Object { if (`$_ -is [System.Management.Automation.ErrorRecord]) { `$written++; "ERROR `$(`$_.FullyQualifiedErrorId): `$_" } else { `$_ } }
exit [int](`$written -gt 0)
"@
        foreach ($argument in '-NoProfile', '-NonInteractive', '-Command', $script) { $start.ArgumentList.Add($argument) }
        $start.WorkingDirectory = $WorkingDirectory
        # Temporary files of the example (a store under GetTempPath()) stay in its working folder.
        $start.Environment['TMPDIR'] = $WorkingDirectory
        $start.RedirectStandardOutput = $true
        $start.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($start)
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
            $process.Kill($true)
            $process.WaitForExit()
            return [pscustomobject]@{ ExitCode = -1; Output = "timed out after $TimeoutSeconds s`n$($stdout.Result)$($stderr.Result)" }
        }
        [pscustomobject]@{ ExitCode = $process.ExitCode; Output = "$($stdout.Result)$($stderr.Result)" }
    }
}

Describe 'Example of <Cmdlet>: <Title>' -ForEach $Examples {
    BeforeAll {
        $testHome = New-TestHome
        $work = New-Item -ItemType Directory (Join-Path $testHome 'work')
        if ($NeedsEngine) {
            $null = Start-VllmEngine -Name my-engine -Backend tiny -Model tiny-16m -ErrorAction Stop
        }
    }

    AfterAll {
        Remove-TestHome $testHome
    }

    It 'runs as shown, without an error' {
        $result = Invoke-Example -Code $Code -WorkingDirectory $work.FullName
        $result.ExitCode | Should-Be 0 -Because "the example printed:`n$($result.Output)"
    }
}
