# Every exported cmdlet ships with real help: a synopsis, a description, examples, and a description for every
# parameter. The help is the MAML file that scripts/New-MamlHelp.ps1 writes at build time from docs/cmdlets/*.md;
# without it Get-Help would still answer, with a synopsis made of the syntax and nothing else, so these tests
# look at the content, not just at whether Get-Help succeeds.

BeforeDiscovery {
    $manifest = Join-Path $PSScriptRoot '../../out/CriuCheckpoint/CriuCheckpoint.psd1'
    $module = Import-Module $manifest -PassThru -Force
    $common = [System.Management.Automation.PSCmdlet]::CommonParameters
    $script:Cmdlets = foreach ($name in $module.ExportedCmdlets.Keys | Sort-Object) {
        @{
            Name       = $name
            # -WhatIf and -Confirm are not common parameters in this sense: the help describes them too.
            Parameters = @((Get-Command $name).Parameters.Keys | Where-Object { $_ -notin $common })
        }
    }
    $script:ErrorIds = @([CriuCheckpoint.Core.ErrorIds].GetFields() | Where-Object IsLiteral | ForEach-Object { $_.GetRawConstantValue() })
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../../out/CriuCheckpoint/CriuCheckpoint.psd1') -Force
}

Describe 'Help of <Name>' -ForEach $Cmdlets {
    BeforeAll {
        $help = Get-Help $Name -Full
        $command = Get-Command $Name
    }

    It 'has a synopsis written for it' {
        $synopsis = "$($help.Synopsis)".Trim()
        $synopsis | Should-NotBeWhiteSpaceString
        # Help generated from metadata alone has the syntax as its synopsis.
        $synopsis | Should-NotBeLikeString "$Name *"
    }

    It 'has a description' {
        (@($help.description | ForEach-Object Text) -join "`n") | Should-NotBeWhiteSpaceString
    }

    It 'has at least two examples, each with code and an explanation' {
        $examples = @($help.examples.example | Where-Object { $_ })
        $examples.Count | Should-BeGreaterThanOrEqual 2
        foreach ($example in $examples) {
            "$($example.code)" | Should-NotBeWhiteSpaceString -Because "example '$($example.title)' needs code"
            (@($example.remarks | ForEach-Object Text) -join "`n") | Should-NotBeWhiteSpaceString -Because "example '$($example.title)' needs an explanation"
        }
    }

    It 'describes -<_>' -ForEach $Parameters {
        $parameter = @($help.parameters.parameter | Where-Object name -EQ $_)
        $parameter.Count | Should-Be 1 -Because "the help should list -$_ once"
        (@($parameter[0].description | ForEach-Object Text) -join "`n") | Should-NotBeWhiteSpaceString
    }

    It 'has one syntax per parameter set' {
        @($help.syntax.syntaxItem).Count | Should-Be $command.ParameterSets.Count
    }

    It 'names the types it outputs' {
        $documented = @($help.returnValues.returnValue | ForEach-Object { $_.type.name })
        foreach ($type in $command.OutputType) {
            $documented | Should-ContainCollection @($type.Name)
        }
    }
}

Describe 'about_CriuCheckpoint' {
    BeforeAll {
        $about = Get-Help about_CriuCheckpoint | Out-String
    }

    It 'is found by Get-Help' {
        $about | Should-MatchString 'about_CriuCheckpoint'
    }

    It 'explains <_>' -ForEach 'CRIUCHECKPOINT_HOME', 'CRIUCHECKPOINT_PYTHON', '/run/criu-checkpoint' {
        $about | Should-MatchString ([regex]::Escape($_))
    }

    It 'lists ErrorId <_>' -ForEach $ErrorIds {
        $about | Should-MatchString "\b$([regex]::Escape($_))\b"
    }
}
