"""Messages of the core pipeline and the interface every backend stage implements.

frontend → core0 → core1 → … → last core → frontend. Each core runs its slice of the layers on a
StepRequest and passes it on with `hidden` set; the last core answers a StepResult (one sampled token
per sequence) or, if any core failed on the step, the StepFailure is passed through to the frontend.
Sequences are keyed by the scheduler's integer sequence id, never by a client's request id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: Optional[int] = None
    logprobs: bool = False  # also return the sampled token's logprob (the canary asks for it)


@dataclass
class NewSequence:
    """Sent with a sequence's first chunk: what every core must set up for it."""
    capacity: int  # positions the KV cache must hold: prompt + max_tokens
    sampling: SamplingParams


@dataclass
class SeqInput:
    seq_id: int
    token_ids: list  # prompt on the first step, then the last sampled token
    start: int  # position of token_ids[0]
    new: Optional[NewSequence] = None


@dataclass
class StepRequest:
    seqs: list
    free: list = field(default_factory=list)  # seq ids whose caches and samplers to drop first
    hidden: Any = None  # activations from the previous core (backend-specific array)


@dataclass
class StepResult:
    tokens: list  # one per sequence, in StepRequest.seqs order
    # One per sequence: the log-softmax of the model's logits at the sampled token where the sequence's
    # SamplingParams asked for it, else None.
    logprobs: list = field(default_factory=list)


@dataclass
class StepFailure:
    message: str


@dataclass
class StageSpec:
    """What one core builds: `module` is the backend module whose build_stage(config) it calls."""
    module: str
    config: Any
    index: int
    workers: int


class Stage(Protocol):
    def step(self, request: StepRequest) -> Any:
        """StepRequest with `hidden` set (not the last core) or StepResult (the last core)."""

    def release(self) -> None:
        """Drop what must not be in a checkpoint image (KV caches, device pools)."""

    def reacquire(self, weight_holder: Optional[str] = None) -> dict:
        """Undo release(); returns phase timings {name: seconds}. weight_holder: the socket of a weight holder
        that may give back released weights (engine_host/weight_holder.py); a stage that released none
        ignores it."""

    def report(self) -> dict:
        """device, dtype, host_memory_bytes, gpu_memory_bytes, phases."""
