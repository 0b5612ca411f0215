"""Token sampling in the last core, one numpy Generator per request.

Each request draws from its own Generator seeded by its `seed`, so a seeded request samples the same
tokens whatever else shares its batch. Greedy is argmax (first index on ties).
"""
from __future__ import annotations

import numpy as np

from .stage import SamplingParams


class Sampler:
    def __init__(self, params: SamplingParams):
        self._params = params
        self._rng = np.random.default_rng(params.seed) if params.temperature > 0 else None

    @property
    def greedy(self) -> bool:
        return self._rng is None

    @property
    def wants_logprob(self) -> bool:
        return self._params.logprobs

    def sample(self, logits: np.ndarray) -> int:
        if self._rng is None:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self._params.temperature
        probs = np.exp(scaled - scaled.max())
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        cumulative /= cumulative[-1]
        if self._params.top_p < 1.0:
            # Keep the smallest prefix of most likely tokens whose mass reaches top_p.
            keep = int(np.searchsorted(cumulative, self._params.top_p)) + 1
            order, cumulative = order[:keep], cumulative[:keep] / cumulative[keep - 1]
        pick = int(np.searchsorted(cumulative, self._rng.random(), side="right"))
        return int(order[min(pick, len(order) - 1)])


def logprob(logits: np.ndarray, token: int) -> float:
    """log-softmax of the logits (before temperature) at `token`, in float64."""
    row = logits.astype(np.float64)
    top = row.max()
    return float(row[token] - top - np.log(np.exp(row - top).sum()))
