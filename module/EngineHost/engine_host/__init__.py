"""CriuCheckpoint engine host: a checkpointable inference engine behind a ZeroMQ ROUTER socket."""

__version__ = "0.1.0"
