"""The tiny model in-process: logits bit-identical alone and in any batch, and whatever the layer split."""
from __future__ import annotations

import numpy as np
import pytest

from engine_host.backends import tiny, tiny_stage
from engine_host.stage import NewSequence, SamplingParams, SeqInput, StepRequest

PROMPTS = [b"Hello", b"The quick brown fox", b"abc", b"Once upon a time", b"zzz", b"0123456789",
           b"CRIU checkpoints", b"x"]


class _RecordingSampler:
    """Greedy, and keeps every logits row it was given (per sequence, in order)."""

    wants_logprob = False

    def __init__(self, params):
        self.rows = []

    def sample(self, logits):
        self.rows.append(logits.copy())
        return int(np.argmax(logits))


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setattr(tiny_stage, "Sampler", _RecordingSampler)


def _stages(model="tiny-4m", workers=1):
    config = tiny.TinyConfig(**tiny.PRESETS[model], seed=0, max_model_len=256)
    n = config.n_layers
    return [tiny_stage.TinyStage(tiny.TinyStageConfig(
        config, i * n // workers, (i + 1) * n // workers, i == 0, i == workers - 1))
        for i in range(workers)]


def _run(stages, request):
    for stage in stages:
        request = stage.step(request)
    return request.tokens


def _decode(stages, prompts, steps, delays=None):
    """Greedy-decode prompts together; prompt i joins at step delays[i]. Returns each one's logits."""
    delays = delays or [0] * len(prompts)
    out = {i: [] for i in range(len(prompts))}
    for step in range(max(delays) + steps):
        seqs = []
        for i, p in enumerate(prompts):
            k = step - delays[i]
            if k == 0:
                seqs.append(SeqInput(i, list(p), 0, NewSequence(len(p) + steps, SamplingParams())))
            elif 0 < k < steps:
                seqs.append(SeqInput(i, [out[i][-1]], len(p) + k - 1))
        for s, token in zip(seqs, _run(stages, StepRequest(seqs))):
            out[s.seq_id].append(token)
    samplers = stages[-1]._samplers
    return [np.stack(samplers[i].rows) for i in range(len(prompts))]


def test_linear_rows_are_bit_identical_for_any_number_of_rows():
    rng = np.random.default_rng(1)
    for k, n in [(96, 257), (384, 96), (768, 257), (96, 288)]:
        linear = tiny_stage._Linear(rng.standard_normal((k, n), dtype=np.float32))
        x = rng.standard_normal((64, k), dtype=np.float32)
        full = linear(x)
        for m in (1, 2, 3, 5, 17, 40):
            assert np.array_equal(linear(x[:m]), full[:m])
            assert np.array_equal(linear(x[7:7 + m]), full[7:7 + m])


def test_logits_alone_and_in_a_batch_are_bit_identical(recording):
    alone = [_decode(_stages(), [p], 12)[0] for p in PROMPTS]
    batched = _decode(_stages(), PROMPTS, 12)
    staggered = _decode(_stages(), PROMPTS, 12, delays=[3, 0, 1, 5, 2, 0, 4, 1])
    for a, b, c in zip(alone, batched, staggered):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_logits_do_not_depend_on_the_layer_split(recording):
    one = _decode(_stages(workers=1), PROMPTS[:3], 8)
    for workers in (2, 3, 9):
        split = _decode(_stages(workers=workers), PROMPTS[:3], 8)
        assert all(np.array_equal(a, b) for a, b in zip(one, split))
