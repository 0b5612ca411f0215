# Shared by bench.ps1 and gpu-bench.ps1; dot-source it once $ModulePath holds the built module folder.

function Get-Median([double[]] $Values) { ($Values | Sort-Object)[[int][math]::Floor(($Values.Count - 1) / 2)] }

# Runs one of the module's Python tools (engine_host.tools.<Tool>) with the engine's interpreter; returns its exit code.
function Invoke-EngineTool([string] $Tool, [string[]] $Arguments) {
    $python = if ($env:CRIUCHECKPOINT_PYTHON) { $env:CRIUCHECKPOINT_PYTHON } else { 'python3' }
    $previous = $env:PYTHONPATH
    $env:PYTHONPATH = (Join-Path $ModulePath 'EngineHost') + [IO.Path]::PathSeparator + $env:PYTHONPATH
    try {
        & $python -m "engine_host.tools.$Tool" @Arguments
        if ($LASTEXITCODE -ne 0) { throw "engine_host.tools.$Tool $Arguments exited with $LASTEXITCODE" }
    }
    finally { $env:PYTHONPATH = $previous }
}

# The physical floor's measurements (engine_host.tools.measure_floor), as a hashtable.
function Invoke-FloorTool([string[]] $Arguments) {
    Invoke-EngineTool 'measure_floor' $Arguments | ConvertFrom-Json -AsHashtable
}
