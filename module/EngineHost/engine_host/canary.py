"""The canary: one fixed greedy request whose answer is taken at prepare_checkpoint and again at every resume.

It follows vLLM's snapshot server (vllm/snapshot/server.py `run_engine_canary`, types.py `oracles_match`):
the same prompt, temperature 0, seed 0, the sampled tokens' logprobs, and a match that compares token ids
exactly and logprobs within an absolute 1e-3. Two tokens here instead of vLLM's one, so that the answer
runs a prefill and one decode step through the KV cache the engine allocated again at resume.

The logprob is the log-softmax of the model's own logits (before temperature) at the sampled token. It is
recorded rounded to `DECIMALS` places, well inside `TOLERANCE`: greedy decoding of one request alone on
the same device with the same kernels and weights repeats itself bit for bit, so what the tolerance
absorbs is only that rounding and a different summation order of the log-softmax (docs/protocol.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .stage import NewSequence, SamplingParams, SeqInput, StepFailure, StepRequest

PROMPT = "The capital of France is"  # vllm/snapshot/server.py _CANARY_PROMPT
MAX_TOKENS = 2
TOLERANCE = 1e-3  # vllm/snapshot/types.py oracles_match: abs_tol=1e-3
DECIMALS = 4
_SEQ_ID = -2  # the warm-up is -1; the scheduler's sequences count up from 0


class CanaryFailed(Exception):
    """The engine could not answer the canary at all."""


@dataclass(frozen=True)
class Canary:
    prompt: str
    token_ids: tuple
    logprobs: tuple  # one per token, rounded to DECIMALS

    @staticmethod
    def measured(prompt: str, token_ids: list, logprobs: list) -> "Canary":
        if len(token_ids) != MAX_TOKENS or len(logprobs) != len(token_ids):
            raise CanaryFailed(f"the canary gave {len(token_ids)} token(s) and {len(logprobs)} logprob(s); "
                               f"{MAX_TOKENS} of each were asked for")
        if not all(isinstance(p, (int, float)) and math.isfinite(p) for p in logprobs):
            raise CanaryFailed(f"the canary's logprobs are not finite: {logprobs}")
        return Canary(prompt, tuple(int(t) for t in token_ids),
                      tuple(round(float(p), DECIMALS) for p in logprobs))

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "token_ids": list(self.token_ids), "logprobs": list(self.logprobs)}

    def __str__(self) -> str:
        return f"token ids {list(self.token_ids)}, logprobs {list(self.logprobs)}"


def parse(value: Any) -> Canary:
    """A canary from a resume message (the manifest's, as the controller sends it); ValueError if bad."""
    if not isinstance(value, dict) or set(value) != {"prompt", "token_ids", "logprobs"}:
        raise ValueError("canary must be an object with exactly prompt, token_ids and logprobs")
    prompt, ids, logprobs = value["prompt"], value["token_ids"], value["logprobs"]
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("canary.prompt must be a non-empty string")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 4 or not all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in ids):
        raise ValueError("canary.token_ids must be 1 to 4 token ids")
    if not isinstance(logprobs, list) or len(logprobs) != len(ids) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in logprobs):
        raise ValueError("canary.logprobs must be one finite number per token id")
    return Canary(prompt, tuple(ids), tuple(float(p) for p in logprobs))


def mismatch(expected: Canary, got: Canary) -> Optional[str]:
    """Why `got` is not `expected` (token ids differ, or a logprob is beyond TOLERANCE), or None."""
    if expected.prompt != got.prompt:
        return f"the canary prompt differs: expected {expected.prompt!r}, asked {got.prompt!r}"
    if expected.token_ids != got.token_ids:
        return f"token ids differ: expected {list(expected.token_ids)}, got {list(got.token_ids)}"
    worst = max(abs(a - b) for a, b in zip(expected.logprobs, got.logprobs))
    if worst > TOLERANCE:
        return (f"logprobs differ by {worst:.4g} (tolerance {TOLERANCE}): expected "
                f"{list(expected.logprobs)}, got {list(got.logprobs)}")
    return None


def run_steps(pipeline, tokenizer) -> Canary:
    """The canary through a core pipeline (tiny, torch): a prefill and decode steps of one sequence alone,
    greedy, every token kept (the end-of-sequence token too), then its caches freed."""
    ids = tokenizer.encode(PROMPT)
    new = NewSequence(len(ids) + MAX_TOKENS, SamplingParams(temperature=0.0, seed=0, logprobs=True))
    tokens, logprobs = [], []
    step = SeqInput(_SEQ_ID, ids, 0, new)
    try:
        for _ in range(MAX_TOKENS):
            result = pipeline.step(StepRequest([step]))
            if isinstance(result, StepFailure):
                raise CanaryFailed(f"the canary step failed: {result.message}")
            tokens.append(result.tokens[0])
            logprobs.append(result.logprobs[0])
            step = SeqInput(_SEQ_ID, [tokens[-1]], len(ids) + len(tokens) - 1)
    finally:
        freed = pipeline.step(StepRequest([], free=[_SEQ_ID]))
    if isinstance(freed, StepFailure):
        raise CanaryFailed(f"freeing the canary's caches failed: {freed.message}")
    return Canary.measured(PROMPT, tokens, logprobs)
