namespace CriuCheckpoint.Commands;

/// <summary>What the text of an EngineIdentity is compared with.</summary>
internal enum EngineKey
{
    /// <summary>Engine names (wildcards allowed), or an engine id exactly: what -Engine and -Name take.</summary>
    NameOrId,

    /// <summary>Engine ids (wildcards allowed): what -Id takes.</summary>
    Id,
}
