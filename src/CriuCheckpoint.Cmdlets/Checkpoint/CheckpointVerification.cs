namespace CriuCheckpoint.Checkpoint;

/// <summary>
/// What Test-EngineCheckpoint found (PowerShell type CriuCheckpoint.Checkpoint.CheckpointVerification): every file
/// the manifest lists, at its size and with its hash, or the problems, each naming its file.
/// </summary>
public sealed record CheckpointVerification
{
    public string Path { get; init; } = string.Empty;

    public bool Valid => Problems.Count == 0;

    /// <summary>The files compared with the manifest, relative to the checkpoint: engine.log and images/&lt;name&gt;.</summary>
    public IReadOnlyList<string> Files { get; init; } = Array.Empty<string>();

    /// <summary>The bytes read and hashed.</summary>
    public long Bytes { get; init; }

    public double Seconds { get; init; }

    public IReadOnlyList<string> Problems { get; init; } = Array.Empty<string>();

    public override string ToString() => Path;
}
