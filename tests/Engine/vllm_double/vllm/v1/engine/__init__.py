import enum
from typing import Literal

PauseMode = Literal["abort", "wait", "keep"]


class FinishReason(enum.IntEnum):
    """As vllm.v1.engine.FinishReason: str() is what CompletionOutput.finish_reason carries."""
    STOP = 0
    LENGTH = 1
    ABORT = 2
    ERROR = 3

    def __str__(self):
        return ("stop", "length", "abort", "error")[self.value]
