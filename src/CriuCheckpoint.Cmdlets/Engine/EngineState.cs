using Newtonsoft.Json;
using Newtonsoft.Json.Converters;

namespace CriuCheckpoint.Engine;

/// <summary>Where an engine is in its life; ConvertTo-Json writes it by name (StringEnumConverter).</summary>
[JsonConverter(typeof(StringEnumConverter))]
public enum EngineState
{
    Starting,
    Ready,
    Prepared,
    Stopped,
    Failed,
}
