"""Engine options as parsed from the command line, and the failure codes of failed.json."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


class FailureCode:
    # startup
    UNKNOWN_BACKEND = "unknown_backend"
    MODEL_NOT_FOUND = "model_not_found"
    UNSUPPORTED_MODEL = "unsupported_model"
    BAD_ENGINE_ARGS = "bad_engine_args"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    MISSING_DEPENDENCY = "missing_dependency"
    CURVE_UNAVAILABLE = "curve_unavailable"
    STARTUP_FAILED = "startup_failed"
    # after serving began
    CORE_DIED = "core_died"
    RESUME_FAILED = "resume_failed"
    GPU_OUT_OF_MEMORY = "gpu_out_of_memory"
    CANARY_MISMATCH = "canary_mismatch"  # the canary after a resume is not the one taken at the checkpoint
    ENGINE_FAILED = "engine_failed"
    # a weight holder's command line (engine_host/weight_holder.py); its other failures use the codes above
    BAD_HOLDER_ARGS = "bad_holder_args"


def is_out_of_memory(exc: BaseException) -> bool:
    """A device allocation failed (torch.cuda.OutOfMemoryError, or a CUDA error saying so), told apart without
    importing torch: the caller names the cause (the GPU is full), not just that something failed."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


class StartupError(Exception):
    """Startup cannot go on; `code` goes to failed.json."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class EngineOptions:
    run_dir: str
    backend: str = "tiny"
    model: Optional[str] = None  # None: the backend's default model
    workers: int = 1
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    max_model_len: Optional[int] = None  # None: the backend's default
    gpu_memory_utilization: float = 0.9
    engine_args: dict = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
