namespace CriuCheckpoint.Engine;

public enum EngineState
{
    Starting,
    Ready,
    Prepared,
    Stopped,
    Failed,
}
