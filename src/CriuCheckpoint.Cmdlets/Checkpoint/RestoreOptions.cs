namespace CriuCheckpoint.Checkpoint;

public sealed record RestoreOptions
{
    public int Count { get; init; } = 1;

    /// <summary>Name of the restored engine; with several replicas each gets "-1", "-2", … appended.</summary>
    public string? Name { get; init; }

    /// <summary>Restore despite compatibility differences (architecture, CPU, kernel, CRIU, mapped files).</summary>
    public bool Force { get; init; }

    public string? CriuPath { get; init; }

    /// <summary>Bound on criu restore plus resume: CRIU 4.2 can hang on damaged images, so this is never infinite.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);
}
