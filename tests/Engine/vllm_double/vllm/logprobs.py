"""As vllm/logprobs.py: one position's logprobs are a dict token id -> Logprob (the list form of
SampleLogprobs, not FlatLogprobs)."""
from dataclasses import dataclass


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


LogprobsOnePosition = dict[int, Logprob]
