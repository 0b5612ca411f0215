#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds the MAML help file of the module's binary cmdlets from the built assembly and docs/cmdlets/*.md.
.DESCRIPTION
    Binary cmdlets get Get-Help only from <AssemblyName>.dll-Help.xml beside the DLL (in a culture folder, en-US
    here). platyPS is not used: this script reads everything that can be read from the assembly itself - cmdlet
    names, parameter sets, parameter types, Mandatory, Position, pipeline input, aliases, wildcard support,
    ValidateSet values, [OutputType] and SupportsShouldProcess - and takes the prose from one markdown file per
    cmdlet. It fails (throws, listing every problem) when a cmdlet has no markdown file or a parameter has no
    description, so a new cmdlet or parameter cannot ship without help.

    The assembly is loaded into a collectible AssemblyLoadContext and inspected through CmdletInfo, the metadata
    Get-Command uses: nothing is imported into the calling session, and a rebuilt DLL is never shadowed by an
    older copy already loaded in it.

    MARKDOWN FORMAT (docs/cmdlets/<Verb-Noun>.md, one file per cmdlet; UTF-8)

        # Verb-Noun                     Required, first heading; must equal the cmdlet name and the file name.

        ## SYNOPSIS                     Required. One short paragraph.

        ## DESCRIPTION                  Required. One or more paragraphs.

        ## EXAMPLES                     Required, at least one (the Pester help test asks for two; write three).
        ### EXAMPLE 1: <title>          One per example; ": <title>" is optional. The first fenced block is the
        ```powershell                   example's code (language powershell, pwsh or none); every line after it
        <code>                          is the explanation (remarks). Write at least one sentence. Further fenced
        ```                             blocks in the remarks (e.g. ```text with sample output) are kept verbatim.
        <explanation paragraphs>        End with "This example runs as shown." (or "... as shown with an engine named
                                        my-engine running.") when it runs verbatim on the tiny engine:
                                        tests/Pester/HelpExamples.Tests.ps1 then runs it.

        ## PARAMETERS                   Required when the cmdlet has parameters.
        ### -Name                       One per parameter the cmdlet declares, common parameters excluded.
        <description paragraphs>        Required for every parameter. -WhatIf and -Confirm get the standard text
                                        when the file does not describe them.
        Default value: <text>           Optional, a line of its own. Shown as "Default value". When present it is
                                        checked against the default the cmdlet really has (its leading word or
                                        number must equal it; "None ..." says the parameter is unset by default
                                        and is not checked); when absent the cmdlet's own default is shown.
                                        Switches show False, parameters without a default None.

        ## INPUTS                       Optional. The types come from the assembly (parameters that take
        ### <TypeName>                  pipeline input); a ### section whose heading names the type (full or
        <description>                   short name) gives its description. Objects bound by property name are
                                        listed as System.Management.Automation.PSObject.

        ## OUTPUTS                      Optional (a warning names each [OutputType] type left undescribed).
        ### <TypeName>                  The types come from [OutputType]; the ### text describes one of them.
        <description>

        ## NOTES                        Optional paragraphs.

        ## RELATED LINKS                Optional. One "- [Text](uri)" or "- Text" line per link.

    Text rules for all prose: paragraphs are separated by blank lines and the lines of one paragraph are joined
    with spaces (wrap the source as you like). A run of list lines ("- ", "* " or "1. ", continuation lines
    indented) stays one paragraph with one item per line. Fenced blocks are kept verbatim. Inline markup is
    flattened for the console: `code` -> code, **bold** -> bold, [text](uri) -> text (uri). The order of the
    ## sections does not matter; other ## headings are an error, so a misspelt section cannot vanish silently.

    Also errors: a ### -Name for a parameter the cmdlet does not have, an OUTPUTS type that is not one of its
    [OutputType]s, a "Default value:" that contradicts the cmdlet, an example without code or explanation, a
    first heading that is not the cmdlet's name. A Verb-Noun.md file that names no cmdlet of the assembly only
    warns (help written ahead of its cmdlet).
.PARAMETER AssemblyPath
    The built CriuCheckpoint.Cmdlets.dll (its dependencies are resolved from the same folder).
.PARAMETER DocsPath
    The folder of the markdown files, docs/cmdlets.
.PARAMETER OutputPath
    The folder the MAML file is written to (created when missing), e.g. out/CriuCheckpoint/en-US.
.EXAMPLE
    ./scripts/New-MamlHelp.ps1 -AssemblyPath out/CriuCheckpoint/CriuCheckpoint.Cmdlets.dll -DocsPath docs/cmdlets -OutputPath out/CriuCheckpoint/en-US
#>
[CmdletBinding()]
[OutputType([System.IO.FileInfo])]
param(
    [Parameter(Mandatory)]
    [string] $AssemblyPath,

    [Parameter(Mandatory)]
    [string] $DocsPath,

    [Parameter(Mandatory)]
    [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$NsMaml = 'http://schemas.microsoft.com/maml/2004/10'
$NsCommand = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$NsDev = 'http://schemas.microsoft.com/maml/dev/2004/10'
$NsMsh = 'http://msh'
$SectionNames = 'SYNOPSIS', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS', 'INPUTS', 'OUTPUTS', 'NOTES', 'RELATED LINKS'
$StandardText = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}
$CommonParameters = [System.Management.Automation.PSCmdlet]::CommonParameters
$OptionalCommonParameters = [System.Management.Automation.PSCmdlet]::OptionalCommonParameters

#region Markdown

function Read-CmdletMarkdown {
    param([string] $Path)

    $doc = [ordered]@{
        Path = $Path; Name = $null; Sections = @{}
        Parameters = [ordered]@{}; Inputs = [ordered]@{}; Outputs = [ordered]@{}; Examples = [System.Collections.Generic.List[object]]::new()
        Problems = [System.Collections.Generic.List[string]]::new()
    }
    $section = $null
    $sub = $null
    $inFence = $false
    $lineNumber = 0
    foreach ($line in [System.IO.File]::ReadAllLines($Path)) {
        $lineNumber++
        if ($line -match '^\s*```') { $inFence = -not $inFence }
        if (-not $inFence -and $line -match '^(#{1,3})\s+(.+?)\s*$') {
            $level = $Matches[1].Length
            $title = $Matches[2]
            if ($level -eq 1) {
                if ($doc.Name) { $doc.Problems.Add("line ${lineNumber}: a second '# ' heading.") }
                $doc.Name = $title
                $section = $null; $sub = $null
                continue
            }
            if ($level -eq 2) {
                $section = $title.ToUpperInvariant()
                $sub = $null
                if ($section -notin $SectionNames) {
                    $doc.Problems.Add("line ${lineNumber}: unknown section '## $title' (known: $($SectionNames -join ', ')).")
                    $section = '?'   # its text is skipped: the problem above already names it
                }
                elseif ($doc.Sections.ContainsKey($section)) {
                    $doc.Problems.Add("line ${lineNumber}: section '## $title' appears twice.")
                }
                else {
                    $doc.Sections[$section] = [System.Collections.Generic.List[string]]::new()
                }
                continue
            }
            # ### headings
            if ($section -eq '?') { continue }
            switch ($section) {
                'PARAMETERS' {
                    if ($title -notmatch '^-([A-Za-z0-9_]+)$') { $doc.Problems.Add("line ${lineNumber}: parameter heading '### $title' is not '### -Name'."); $sub = $null; continue }
                    $sub = [System.Collections.Generic.List[string]]::new()
                    if ($doc.Parameters.Contains($Matches[1])) { $doc.Problems.Add("line ${lineNumber}: parameter -$($Matches[1]) is described twice.") }
                    $doc.Parameters[$Matches[1]] = $sub
                }
                'EXAMPLES' {
                    if ($title -notmatch '^EXAMPLE\s+(\d+)\s*(?::\s*(.*))?$') { $doc.Problems.Add("line ${lineNumber}: example heading '### $title' is not '### EXAMPLE n[: title]'."); $sub = $null; continue }
                    $sub = [System.Collections.Generic.List[string]]::new()
                    $doc.Examples.Add([pscustomobject]@{ Number = [int]$Matches[1]; Title = $Matches[2]; Lines = $sub })
                }
                { $_ -in 'INPUTS', 'OUTPUTS' } {
                    $sub = [System.Collections.Generic.List[string]]::new()
                    $target = if ($section -eq 'INPUTS') { $doc.Inputs } else { $doc.Outputs }
                    $target[$title] = $sub
                }
                default { $doc.Problems.Add("line ${lineNumber}: '### $title' is not expected in section '$section'.") }
            }
            continue
        }
        if ($null -ne $sub) { $sub.Add($line) }
        elseif ($section -eq '?') { continue }
        elseif ($section) { $doc.Sections[$section].Add($line) }
        elseif ($line.Trim()) { $doc.Problems.Add("line ${lineNumber}: text outside any '## ' section."); $section = '?' }
    }
    if ($inFence) { $doc.Problems.Add('a fenced code block is not closed.') }
    [pscustomobject]$doc
}

function ConvertTo-PlainText {
    param([string] $Text)
    $Text = [regex]::Replace($Text, '\[([^\]]+)\]\(([^)]+)\)', '$1 ($2)')
    $Text = [regex]::Replace($Text, '\*\*([^*]+)\*\*', '$1')
    [regex]::Replace($Text, '`([^`]+)`', '$1')
}

# Markdown lines -> paragraphs (strings) following the text rules above.
function ConvertTo-Paragraphs {
    param([AllowEmptyCollection()] [string[]] $Lines)

    $paragraphs = [System.Collections.Generic.List[string]]::new()
    $current = [System.Collections.Generic.List[string]]::new()
    $mode = 'none'   # text | list | fence
    $flush = {
        if ($current.Count) {
            $separator = if ($mode -eq 'text') { ' ' } else { "`n" }
            $paragraphs.Add(($current -join $separator))
            $current.Clear()
        }
    }
    foreach ($line in $Lines) {
        if ($mode -eq 'fence') {
            if ($line -match '^\s*```') { . $flush; $mode = 'none' } else { $current.Add($line.TrimEnd()) }
            continue
        }
        if ($line -match '^\s*```') { . $flush; $mode = 'fence'; continue }
        if (-not $line.Trim()) { . $flush; $mode = 'none'; continue }
        if ($line -match '^\s*([-*]|\d+\.)\s+(.*)$') {
            if ($mode -ne 'list') { . $flush; $mode = 'list' }
            $current.Add((ConvertTo-PlainText $line.Trim()))
            continue
        }
        if ($mode -eq 'list' -and $line -match '^\s+\S') {
            $current[$current.Count - 1] += ' ' + (ConvertTo-PlainText $line.Trim())
            continue
        }
        if ($mode -ne 'text') { . $flush; $mode = 'text' }
        $current.Add((ConvertTo-PlainText $line.Trim()))
    }
    . $flush
    , $paragraphs.ToArray()
}

# An example's lines -> code (first fenced block) and remarks paragraphs (everything else).
function Split-Example {
    param($Example)
    $code = $null
    $rest = [System.Collections.Generic.List[string]]::new()
    $inCode = $false
    foreach ($line in $Example.Lines) {
        if ($null -eq $code -and -not $inCode -and $line -match '^\s*```\s*(\w*)\s*$') {
            if ($Matches[1] -and $Matches[1] -notin 'powershell', 'pwsh', 'ps1') { throw "EXAMPLE $($Example.Number): the code block's language is '$($Matches[1])', not powershell." }
            $inCode = $true
            $codeLines = [System.Collections.Generic.List[string]]::new()
            continue
        }
        if ($inCode) {
            if ($line -match '^\s*```\s*$') { $inCode = $false; $code = ($codeLines -join "`n").TrimEnd(); continue }
            $codeLines.Add($line.TrimEnd())
            continue
        }
        $rest.Add($line)
    }
    [pscustomobject]@{ Code = $code; Remarks = ConvertTo-Paragraphs $rest }
}

#endregion

#region Assembly metadata

function Get-TypeDisplayName {
    param([type] $Type, [switch] $Full)
    $underlying = [Nullable]::GetUnderlyingType($Type)
    if ($underlying) { $Type = $underlying }
    if ($Full) { return $Type.FullName }
    $Type.Name
}

function Get-ParameterDefault {
    param($Instance, [string] $Name, $Metadata)
    if ($Metadata.SwitchParameter) { return 'False' }
    $property = $Instance.GetType().GetProperty($Name)
    if (-not $property) { return $null }
    $value = $property.GetValue($Instance)
    if ($null -eq $value) { return $null }
    if ($value -is [array]) {
        if ($value.Count -eq 0) { return $null }
        return ($value | ForEach-Object { [System.Convert]::ToString($_, [cultureinfo]::InvariantCulture) }) -join ', '
    }
    if ($value -is [string]) { return $(if ($value) { $value } else { $null }) }
    if ($value -is [ValueType]) { return [System.Convert]::ToString($value, [cultureinfo]::InvariantCulture) }
    $null
}

function Test-DefaultMatches {
    param([string] $Documented, [string] $Actual)
    $token = ($Documented.Trim() -split '\s+', 2)[0].Trim("'", '"', '`', ',')
    $actualFirst = ($Actual -split ', ')[0]
    [double] $a = 0; [double] $b = 0
    if ([double]::TryParse($token, [System.Globalization.NumberStyles]::Float, [cultureinfo]::InvariantCulture, [ref] $a) -and
        [double]::TryParse($actualFirst, [System.Globalization.NumberStyles]::Float, [cultureinfo]::InvariantCulture, [ref] $b)) {
        return $a -eq $b
    }
    [string]::Equals($token, $actualFirst, [StringComparison]::OrdinalIgnoreCase)
}

function Get-CmdletModel {
    param([type] $Type)

    $attribute = $Type.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
    $name = "$($attribute.VerbName)-$($attribute.NounName)"
    $info = [System.Management.Automation.CmdletInfo]::new($name, $Type)
    $instance = [Activator]::CreateInstance($Type)
    try {
        $parameters = foreach ($metadata in $info.Parameters.Values) {
            if ($metadata.Name -in $CommonParameters) { continue }
            $sets = @($metadata.ParameterSets.GetEnumerator() | ForEach-Object { [pscustomobject]@{ Name = $_.Key; Set = $_.Value } })
            $byValue = [bool]($sets | Where-Object { $_.Set.ValueFromPipeline })
            $byName = [bool]($sets | Where-Object { $_.Set.ValueFromPipelineByPropertyName })
            $pipeline = if ($byValue -and $byName) { 'True (ByValue, ByPropertyName)' } elseif ($byValue) { 'True (ByValue)' } elseif ($byName) { 'True (ByPropertyName)' } else { 'False' }
            $positions = @($sets | Where-Object { $_.Set.Position -ge 0 } | ForEach-Object { $_.Set.Position } | Select-Object -Unique)
            $validateSet = $metadata.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
            [pscustomobject]@{
                Name           = $metadata.Name
                Type           = $metadata.ParameterType
                IsSwitch       = $metadata.SwitchParameter
                Required       = @($sets | Where-Object { -not $_.Set.IsMandatory }).Count -eq 0
                Position       = if ($positions.Count -eq 1) { [string]$positions[0] } else { 'named' }
                PipelineInput  = $pipeline
                ByValue        = $byValue
                ByPropertyName = $byName
                Globbing       = [bool]($metadata.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
                Aliases        = @($metadata.Aliases)
                ValidValues    = if ($validateSet) { @($validateSet.ValidValues) } else { @() }
                Default        = Get-ParameterDefault $instance $metadata.Name $metadata
                IsOptionalCommon = $metadata.Name -in $OptionalCommonParameters
                Sets           = $sets
            }
        }
    }
    finally {
        if ($instance -is [System.IDisposable]) { $instance.Dispose() }
    }

    $parameterSets = foreach ($set in $info.ParameterSets) {
        $names = @($set.Parameters | Where-Object { $_.Name -notin $CommonParameters } | ForEach-Object Name)
        $inSet = @($parameters | Where-Object { $_.Name -in $names })
        $entry = { param($p) $p.Sets | Where-Object { $_.Name -eq $set.Name -or $_.Name -eq '__AllParameterSets' } | Select-Object -First 1 }
        $ordered = @(
            $inSet | Where-Object { (& $entry $_).Set.Position -ge 0 } | Sort-Object { (& $entry $_).Set.Position }
            $inSet | Where-Object { (& $entry $_).Set.Position -lt 0 -and (& $entry $_).Set.IsMandatory -and -not $_.IsOptionalCommon }
            $inSet | Where-Object { (& $entry $_).Set.Position -lt 0 -and -not (& $entry $_).Set.IsMandatory -and -not $_.IsOptionalCommon }
            $inSet | Where-Object { $_.IsOptionalCommon }
        )
        [pscustomobject]@{
            Name       = $set.Name
            IsDefault  = $set.IsDefault
            Parameters = @($ordered | ForEach-Object {
                    $p = $_; $e = (& $entry $p).Set
                    [pscustomobject]@{ Parameter = $p; Required = $e.IsMandatory; Position = if ($e.Position -ge 0) { [string]$e.Position } else { 'named' } }
                })
        }
    }

    [pscustomobject]@{
        Name          = $name
        Verb          = $attribute.VerbName
        Noun          = $attribute.NounName
        Parameters    = @($parameters)
        ParameterSets = @($parameterSets | Sort-Object { -not $_.IsDefault })
        OutputTypes   = @($info.OutputType | ForEach-Object { if ($_.Type) { $_.Type.FullName } else { $_.Name } } | Select-Object -Unique)
    }
}

#endregion

#region MAML

function Write-Paragraphs {
    param([System.Xml.XmlWriter] $Writer, [string[]] $Paragraphs, [string] $Element = 'description')
    $Writer.WriteStartElement('maml', $Element, $NsMaml)
    foreach ($paragraph in $Paragraphs) { $Writer.WriteElementString('maml', 'para', $NsMaml, $paragraph) }
    if (-not $Paragraphs) { $Writer.WriteElementString('maml', 'para', $NsMaml, '') }
    $Writer.WriteEndElement()
}

function Write-Type {
    param([System.Xml.XmlWriter] $Writer, [string] $Name)
    $Writer.WriteStartElement('dev', 'type', $NsDev)
    $Writer.WriteElementString('maml', 'name', $NsMaml, $Name)
    $Writer.WriteElementString('maml', 'uri', $NsMaml, '')
    $Writer.WriteEndElement()
}

function Write-Parameter {
    param([System.Xml.XmlWriter] $Writer, $Parameter, [string[]] $Description, [string] $Default, [bool] $Required, [string] $Position, [switch] $InSyntax)
    $Writer.WriteStartElement('command', 'parameter', $NsCommand)
    $Writer.WriteAttributeString('required', $Required.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('variableLength', ($Parameter.Type.IsArray).ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('globbing', $Parameter.Globbing.ToString().ToLowerInvariant())
    $Writer.WriteAttributeString('pipelineInput', $Parameter.PipelineInput)
    $Writer.WriteAttributeString('position', $Position)
    $Writer.WriteAttributeString('aliases', $(if ($Parameter.Aliases) { $Parameter.Aliases -join ', ' } else { 'none' }))
    $Writer.WriteElementString('maml', 'name', $NsMaml, $Parameter.Name)
    Write-Paragraphs $Writer $Description
    if ($InSyntax -and $Parameter.ValidValues) {
        $Writer.WriteStartElement('command', 'parameterValueGroup', $NsCommand)
        foreach ($value in $Parameter.ValidValues) {
            $Writer.WriteStartElement('command', 'parameterValue', $NsCommand)
            $Writer.WriteAttributeString('required', 'false')
            $Writer.WriteAttributeString('command', 'variableLength', $NsCommand, 'false')
            $Writer.WriteString($value)
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }
    if (-not ($InSyntax -and $Parameter.IsSwitch)) {
        $Writer.WriteStartElement('command', 'parameterValue', $NsCommand)
        $Writer.WriteAttributeString('required', (-not $Parameter.IsSwitch).ToString().ToLowerInvariant())
        $Writer.WriteAttributeString('variableLength', ($Parameter.Type.IsArray).ToString().ToLowerInvariant())
        $Writer.WriteString((Get-TypeDisplayName $Parameter.Type))
        $Writer.WriteEndElement()
    }
    Write-Type $Writer (Get-TypeDisplayName $Parameter.Type -Full)
    $Writer.WriteElementString('dev', 'defaultValue', $NsDev, $(if ($Default) { $Default } else { 'None' }))
    $Writer.WriteEndElement()
}

function Write-Command {
    param([System.Xml.XmlWriter] $Writer, $Model, $Doc, $Help)

    $Writer.WriteStartElement('command', 'command', $NsCommand)
    $Writer.WriteAttributeString('xmlns', 'maml', $null, $NsMaml)
    $Writer.WriteAttributeString('xmlns', 'command', $null, $NsCommand)
    $Writer.WriteAttributeString('xmlns', 'dev', $null, $NsDev)

    $Writer.WriteStartElement('command', 'details', $NsCommand)
    $Writer.WriteElementString('command', 'name', $NsCommand, $Model.Name)
    $Writer.WriteElementString('command', 'verb', $NsCommand, $Model.Verb)
    $Writer.WriteElementString('command', 'noun', $NsCommand, $Model.Noun)
    Write-Paragraphs $Writer $Help.Synopsis
    $Writer.WriteEndElement()

    Write-Paragraphs $Writer $Help.Description

    $Writer.WriteStartElement('command', 'syntax', $NsCommand)
    foreach ($set in $Model.ParameterSets) {
        $Writer.WriteStartElement('command', 'syntaxItem', $NsCommand)
        $Writer.WriteElementString('maml', 'name', $NsMaml, $Model.Name)
        foreach ($entry in $set.Parameters) {
            $p = $entry.Parameter
            Write-Parameter $Writer $p $Help.Parameters[$p.Name].Description $Help.Parameters[$p.Name].Default $entry.Required $entry.Position -InSyntax
        }
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'parameters', $NsCommand)
    $documentOrder = @($Doc.Parameters.Keys)
    foreach ($p in $Model.Parameters | Sort-Object -Stable { $i = $documentOrder.IndexOf($_.Name); if ($i -lt 0) { [int]::MaxValue } else { $i } }) {
        Write-Parameter $Writer $p $Help.Parameters[$p.Name].Description $Help.Parameters[$p.Name].Default $p.Required $p.Position
    }
    $Writer.WriteEndElement()

    foreach ($kind in 'input', 'return') {
        $Writer.WriteStartElement('command', $(if ($kind -eq 'input') { 'inputTypes' } else { 'returnValues' }), $NsCommand)
        $items = if ($kind -eq 'input') { $Help.Inputs } else { $Help.Outputs }
        foreach ($item in $items) {
            $Writer.WriteStartElement('command', $(if ($kind -eq 'input') { 'inputType' } else { 'returnValue' }), $NsCommand)
            Write-Type $Writer $item.Type
            Write-Paragraphs $Writer $item.Description
            $Writer.WriteEndElement()
        }
        $Writer.WriteEndElement()
    }

    if ($Help.Notes) {
        $Writer.WriteStartElement('maml', 'alertSet', $NsMaml)
        $Writer.WriteStartElement('maml', 'alert', $NsMaml)
        foreach ($paragraph in $Help.Notes) { $Writer.WriteElementString('maml', 'para', $NsMaml, $paragraph) }
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }

    $Writer.WriteStartElement('command', 'examples', $NsCommand)
    foreach ($example in $Help.Examples) {
        $Writer.WriteStartElement('command', 'example', $NsCommand)
        $Writer.WriteElementString('maml', 'title', $NsMaml, $example.Title)
        $Writer.WriteElementString('dev', 'code', $NsDev, $example.Code)
        $Writer.WriteStartElement('dev', 'remarks', $NsDev)
        foreach ($paragraph in $example.Remarks) { $Writer.WriteElementString('maml', 'para', $NsMaml, $paragraph) }
        $Writer.WriteEndElement()
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteStartElement('command', 'relatedLinks', $NsCommand)
    foreach ($link in $Help.Links) {
        $Writer.WriteStartElement('maml', 'navigationLink', $NsMaml)
        $Writer.WriteElementString('maml', 'linkText', $NsMaml, $link.Text)
        $Writer.WriteElementString('maml', 'uri', $NsMaml, $link.Uri)
        $Writer.WriteEndElement()
    }
    $Writer.WriteEndElement()

    $Writer.WriteEndElement()
}

#endregion

# Merges one cmdlet's metadata with its markdown; adds what is wrong to $Problems.
function Merge-Help {
    param($Model, $Doc, [System.Collections.Generic.List[string]] $Problems)

    $where = [System.IO.Path]::GetFileName($Doc.Path)
    $fail = { param($message) $Problems.Add("${where}: $message") }
    foreach ($problem in $Doc.Problems) { & $fail $problem }
    if ($Doc.Name -cne $Model.Name) { & $fail "the first heading must be '# $($Model.Name)', not '# $($Doc.Name)'." }

    $section = { param($name) if ($Doc.Sections.ContainsKey($name)) { ConvertTo-Paragraphs $Doc.Sections[$name] } else { @() } }
    $synopsis = & $section 'SYNOPSIS'
    $description = & $section 'DESCRIPTION'
    if (-not $synopsis) { & $fail 'the SYNOPSIS section is missing or empty.' }
    if (-not $description) { & $fail 'the DESCRIPTION section is missing or empty.' }

    $parameters = @{}
    foreach ($p in $Model.Parameters) {
        $lines = if ($Doc.Parameters.Contains($p.Name)) { @($Doc.Parameters[$p.Name]) } else { @() }
        $documentedDefault = $null
        $prose = [System.Collections.Generic.List[string]]::new()
        foreach ($line in $lines) {
            if ($line -match '^\s*Default value:\s*(.*?)\s*$') { $documentedDefault = $Matches[1] } else { $prose.Add($line) }
        }
        $lines = $prose.ToArray()
        $text = @(ConvertTo-Paragraphs $lines)
        if (-not $text -and $StandardText.ContainsKey($p.Name)) { $text = @($StandardText[$p.Name]) }
        if (-not $text) { & $fail "parameter -$($p.Name) has no description (add '### -$($p.Name)' under '## PARAMETERS')." }
        if ($documentedDefault -and $documentedDefault -notmatch '^None\b' -and $p.Default -and -not $p.IsSwitch -and -not (Test-DefaultMatches $documentedDefault $p.Default)) {
            & $fail "parameter -$($p.Name): 'Default value: $documentedDefault' does not match the cmdlet's default '$($p.Default)'."
        }
        $default = if ($documentedDefault) { $documentedDefault } else { $p.Default }
        $parameters[$p.Name] = [pscustomobject]@{ Description = $text; Default = $default }
    }
    foreach ($name in $Doc.Parameters.Keys) {
        if ($name -notin $Model.Parameters.Name) { & $fail "describes -$name, which $($Model.Name) does not have." }
    }

    $examples = foreach ($example in $Doc.Examples | Sort-Object Number) {
        try { $parts = Split-Example $example } catch { & $fail $_.Exception.Message; continue }
        if (-not $parts.Code) { & $fail "EXAMPLE $($example.Number) has no fenced code block." }
        if (-not $parts.Remarks) { & $fail "EXAMPLE $($example.Number) has no explanation after its code." }
        $title = "EXAMPLE $($example.Number)$(if ($example.Title) { ": $($example.Title)" })"
        [pscustomobject]@{ Title = "----- $title -----"; Code = $parts.Code; Remarks = $parts.Remarks }
    }
    if (-not $examples) { & $fail 'the EXAMPLES section has no "### EXAMPLE n" entry.' }

    $describe = {
        param($table, [string] $fullName)
        $short = $fullName.Split('.')[-1]
        foreach ($key in $table.Keys) {
            if ($key -eq $fullName -or $key -eq $short) { return ConvertTo-Paragraphs $table[$key] }
        }
    }
    $inputs = [System.Collections.Generic.List[object]]::new()
    foreach ($p in $Model.Parameters | Where-Object ByValue) {
        $elementType = if ($p.Type.IsArray) { $p.Type.GetElementType() } else { $p.Type }
        $typeName = Get-TypeDisplayName $elementType -Full
        $existing = $inputs | Where-Object Type -EQ $typeName
        if ($existing) { continue }
        $text = & $describe $Doc.Inputs $typeName
        if (-not $text) {
            $bound = ($Model.Parameters | Where-Object { $_.ByValue -and ((Get-TypeDisplayName $(if ($_.Type.IsArray) { $_.Type.GetElementType() } else { $_.Type }) -Full) -eq $typeName) } | ForEach-Object { "-$($_.Name)" }) -join ', '
            $text = @("You can pipe a $typeName to $bound.")
        }
        $inputs.Add([pscustomobject]@{ Type = $typeName; Description = $text })
    }
    $byName = @($Model.Parameters | Where-Object ByPropertyName | ForEach-Object Name)
    if ($byName) {
        $typeName = 'System.Management.Automation.PSObject'
        $text = & $describe $Doc.Inputs $typeName
        if (-not $text) { $text = @("Any object with a property named $($byName -join ', ') binds that property to the parameter of the same name.") }
        $inputs.Add([pscustomobject]@{ Type = $typeName; Description = $text })
    }
    foreach ($key in $Doc.Inputs.Keys) {
        if (-not ($inputs | Where-Object { $_.Type -eq $key -or $_.Type.Split('.')[-1] -eq $key })) {
            $inputs.Add([pscustomobject]@{ Type = $key; Description = ConvertTo-Paragraphs $Doc.Inputs[$key] })
        }
    }
    if (-not $inputs.Count) { $inputs.Add([pscustomobject]@{ Type = 'None'; Description = @("You cannot pipe objects to $($Model.Name).") }) }

    $outputs = [System.Collections.Generic.List[object]]::new()
    foreach ($typeName in $Model.OutputTypes) {
        $text = & $describe $Doc.Outputs $typeName
        if (-not $text) { Write-Warning "${where}: output type $typeName has no '### $typeName' description under '## OUTPUTS'." }
        $outputs.Add([pscustomobject]@{ Type = $typeName; Description = @($text) })
    }
    foreach ($key in $Doc.Outputs.Keys) {
        if (-not ($outputs | Where-Object { $_.Type -eq $key -or $_.Type.Split('.')[-1] -eq $key })) {
            & $fail "OUTPUTS describes '$key', which is not an [OutputType] of $($Model.Name)."
        }
    }
    if (-not $outputs.Count) { $outputs.Add([pscustomobject]@{ Type = 'None'; Description = @("$($Model.Name) writes no objects to the pipeline.") }) }

    $links = foreach ($line in $(if ($Doc.Sections.ContainsKey('RELATED LINKS')) { $Doc.Sections['RELATED LINKS'] } else { @() })) {
        if (-not $line.Trim()) { continue }
        if ($line -match '^\s*[-*]\s+\[([^\]]+)\]\(([^)]*)\)\s*$') { [pscustomobject]@{ Text = $Matches[1]; Uri = $Matches[2] } }
        elseif ($line -match '^\s*[-*]\s+(.+?)\s*$') { [pscustomobject]@{ Text = $Matches[1]; Uri = '' } }
        else { & $fail "RELATED LINKS line '$line' is not '- [Text](uri)' or '- Text'." }
    }

    [pscustomobject]@{
        Synopsis    = $synopsis
        Description = $description
        Parameters  = $parameters
        Examples    = @($examples)
        Inputs      = $inputs
        Outputs     = $outputs
        Notes       = & $section 'NOTES'
        Links       = @($links)
    }
}

# --- main ---------------------------------------------------------------------------------------------------

$AssemblyPath = (Resolve-Path -LiteralPath $AssemblyPath).ProviderPath
$DocsPath = (Resolve-Path -LiteralPath $DocsPath).ProviderPath
$OutputPath = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($OutputPath)
$assemblyDirectory = Split-Path $AssemblyPath

$context = [System.Runtime.Loader.AssemblyLoadContext]::new("MamlHelp-$([guid]::NewGuid())", $true)
$context.add_Resolving({
        param($loadContext, $assemblyName)
        $candidate = Join-Path $assemblyDirectory "$($assemblyName.Name).dll"
        if (Test-Path -LiteralPath $candidate) { $loadContext.LoadFromAssemblyPath($candidate) }
    })
try {
    $assembly = $context.LoadFromAssemblyPath($AssemblyPath)
    $cmdletTypes = @($assembly.GetExportedTypes() | Where-Object {
            -not $_.IsAbstract -and $_.IsSubclassOf([System.Management.Automation.Cmdlet]) -and
            $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false).Count -gt 0
        })
    if (-not $cmdletTypes) { throw "$AssemblyPath defines no cmdlets." }
    $models = @($cmdletTypes | ForEach-Object { Get-CmdletModel $_ } | Sort-Object Name)

    $problems = [System.Collections.Generic.List[string]]::new()
    $helps = [ordered]@{}
    foreach ($model in $models) {
        $markdown = Join-Path $DocsPath "$($model.Name).md"
        if (-not (Test-Path -LiteralPath $markdown)) {
            $problems.Add("$($model.Name) has no help: create $markdown (format: see the top of $PSCommandPath).")
            continue
        }
        Write-Verbose "Reading $markdown"
        $doc = Read-CmdletMarkdown $markdown
        $helps[$model.Name] = [pscustomobject]@{ Model = $model; Doc = $doc; Help = Merge-Help $model $doc $problems }
    }
    foreach ($file in Get-ChildItem -LiteralPath $DocsPath -Filter '*-*.md') {
        if ($file.BaseName -notin $models.Name) { Write-Warning "$($file.Name) documents no cmdlet of $([System.IO.Path]::GetFileName($AssemblyPath)); it is not included." }
    }
    if ($problems.Count) {
        throw "Help for $([System.IO.Path]::GetFileName($AssemblyPath)) is incomplete ($($problems.Count) problem(s)):`n  - $($problems -join "`n  - ")"
    }

    New-Item -ItemType Directory -Force -Path $OutputPath | Out-Null
    $target = Join-Path $OutputPath "$([System.IO.Path]::GetFileName($AssemblyPath))-Help.xml"
    $settings = [System.Xml.XmlWriterSettings]@{ Indent = $true; IndentChars = '  '; Encoding = [System.Text.UTF8Encoding]::new($false); NewLineChars = "`n" }
    $writer = [System.Xml.XmlWriter]::Create($target, $settings)
    try {
        $writer.WriteStartDocument()
        $writer.WriteStartElement('helpItems', $NsMsh)
        $writer.WriteAttributeString('schema', 'maml')
        foreach ($entry in $helps.Values) { Write-Command $writer $entry.Model $entry.Doc $entry.Help }
        $writer.WriteEndElement()
        $writer.WriteEndDocument()
    }
    finally {
        $writer.Dispose()
    }

    # Read it back: the file must be well-formed and hold one command per cmdlet.
    $xml = [xml]::new()
    $xml.Load($target)
    $ns = [System.Xml.XmlNamespaceManager]::new($xml.NameTable)
    $ns.AddNamespace('command', $NsCommand)
    $written = $xml.SelectNodes('//command:command/command:details/command:name', $ns).Count
    if ($written -ne $models.Count) { throw "$target holds $written command(s), expected $($models.Count)." }
    Write-Verbose "Wrote help for $($models.Name -join ', ') to $target"
    Get-Item -LiteralPath $target
}
finally {
    $context.Unload()
}
