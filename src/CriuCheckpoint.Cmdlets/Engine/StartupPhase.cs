namespace CriuCheckpoint.Engine;

/// <summary>
/// The cold-start phases the engine host names in phase.json (docs/protocol.md, "Startup handshake"), in words for
/// Start-VllmEngine's progress bar, each with how far along the start is when it begins.
/// </summary>
internal static class StartupPhase
{
    /// <summary>The status and percentage for <paramref name="phase"/>; null: the host has not named one yet (Python is importing it).</summary>
    public static (string Status, int Percent) Describe(string? phase, EngineSpec spec) => phase switch
    {
        null => ("Starting the engine host (Python imports it)", 5),
        "plan" => ($"Planning the {spec.Backend} engine: checking its options, loading the tokenizer", 10),
        "spawn_cores" => ($"Starting {spec.Workers} core process{(spec.Workers == 1 ? string.Empty : "es")}", 15),
        "load_model" => ($"Loading {spec.Model} into the cores: weights and KV cache", 20),
        "engine" => ($"vLLM is building its engine for {spec.Model}: weights, memory profile, KV cache, CUDA graphs", 20),
        "warmup" => ("Warming up: one prefill and one decode step", 85),
        "bind" => ("Opening the encrypted link", 90),
        _ => ($"Engine phase {phase}", 20),
    };
}
