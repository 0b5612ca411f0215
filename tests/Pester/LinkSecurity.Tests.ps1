# The link as another local user meets it: a real unprivileged user, made here, who has pyzmq and the port but
# cannot read the engine's run directory, so cannot hello, generate, shut the engine down or prepare it.

BeforeAll {
    . (Join-Path $PSScriptRoot 'Common.ps1')
    $script:TestHome = New-TestHome
    $script:UserName = 'criu-link-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group $UserName
    if ($LASTEXITCODE -ne 0) { throw "useradd $UserName exited with $LASTEXITCODE." }
    $script:AsUser = @('setpriv', "--reuid=$(id -u $UserName)", "--regid=$(id -g $UserName)", '--clear-groups')
    $script:Attempts = 'hello', 'generate', 'prepare_checkpoint', 'shutdown'
    $script:Engine = Start-VllmEngine -Model tiny-16m -Name link-owner
}

AfterAll {
    if ($Engine) { Stop-VllmEngine -Engine $Engine -ErrorAction Ignore }
    $uid = id -u $UserName
    foreach ($status in Get-ChildItem /proc -Directory | Where-Object Name -Match '^\d+$') {
        $real = (Get-Content -LiteralPath "$($status.FullName)/status" -ErrorAction Ignore | Select-String '^Uid:\s+(\d+)').Matches.Groups
        if ($real -and $real[1].Value -eq $uid) { Stop-Process -Id ([int]$status.Name) -Force -ErrorAction Ignore }
    }
    userdel $UserName
    Remove-TestHome $TestHome
}

Describe 'Another user on the host' {
    It 'cannot read the key files in the engine''s run directory' {
        & $AsUser[0] @($AsUser | Select-Object -Skip 1) cat /etc/os-release > $null
        $LASTEXITCODE | Should -Be 0
        (Get-Item $Engine.RunDirectory).UnixMode | Should -Be 'drwx------'
        foreach ($name in 'server.public', 'client.public', 'client.secret') {
            $file = Join-Path $Engine.RunDirectory $name
            (Get-Item $file).UnixMode | Should -Be '-rw-------'
            & $AsUser[0] @($AsUser | Select-Object -Skip 1) cat $file 2>$null
            $LASTEXITCODE | Should -Not -Be 0
        }
    }

    It 'gets no answer to hello, generate, prepare_checkpoint or shutdown without CURVE' {
        $replies = Invoke-LinkClient $Engine.Endpoint $Attempts -Prefix $AsUser
        $replies.Keys | Sort-Object | Should -Be ($Attempts | Sort-Object)
        $replies.Values | Where-Object { $_ } | Should -BeNullOrEmpty
    }

    It 'gets no answer with the engine''s server key and a client key of its own' {
        $serverKey = (Get-Content (Join-Path $Engine.RunDirectory 'server.public')).Trim()
        $replies = Invoke-LinkClient $Engine.Endpoint $Attempts -ServerKey $serverKey -Prefix $AsUser
        $replies.Keys | Sort-Object | Should -Be ($Attempts | Sort-Object)
        $replies.Values | Where-Object { $_ } | Should -BeNullOrEmpty
    }

    It 'leaves the engine serving its owner as before, who gets the answers the same client was refused' {
        $replies = Invoke-LinkClient $Engine.Endpoint hello, health -Keys $Engine.RunDirectory
        $replies.hello.backend | Should -Be 'tiny'
        $replies.health.state | Should -Be 'ready'
        $replies.health.in_flight | Should -Be 0
        (Get-VllmEngine -Name link-owner).State | Should -Be 'Ready'
        (Invoke-EngineGenerate -Engine $Engine -Prompt 'Still mine' -MaxTokens 4).CompletionTokens | Should -BeGreaterThan 0
    }
}
