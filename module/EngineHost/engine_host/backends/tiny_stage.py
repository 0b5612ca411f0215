"""The tiny backend, core side: a byte-level decoder-only transformer in numpy float32 with seeded
random weights.

Vocabulary: the 256 byte values plus an end-of-sequence id (256). Pre-norm blocks: RMSNorm, multi-head
causal attention with rotary positions and a per-sequence KV cache, ReLU MLP; final RMSNorm, LM head.

Two invariants the tests hold us to:
- The model does not depend on --workers: layer i's weights come from a Generator seeded by
  (seed, LAYER, i), so whichever core builds layer i builds the same numbers.
- Greedy output does not depend on batch composition, bit for bit. No computation mixes rows of
  different sequences, but that is not enough: a BLAS may round a row differently depending on how
  many rows share the product (OpenBLAS uses GEMV for one row and small-matrix kernels for a few rows,
  each adding in its own order). So linear layers multiply integers: weights and each activation row
  are scaled by a power of two and rounded to integers small enough that every partial sum is exact
  in float32, which makes the product independent of the order of additions, hence of the batch and
  of the BLAS. Attention runs per sequence on that sequence's own cache (the same shapes alone or in
  a batch), and elementwise ops are exact (ReLU rather than an exp-based activation, whose SIMD and
  scalar paths could round differently depending on where a row lands in the batch).
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from ..sampling import Sampler, logprob
from ..stage import StageSpec, StepRequest, StepResult
from .tiny import VOCAB_SIZE, TinyConfig, TinyStageConfig

RMS_EPS = 1e-5
ROPE_BASE = 10000.0

# Generator streams: (seed, stream, index) seeds one tensor group.
_EMBED, _LAYER, _HEAD = 0, 1, 2

# LM head bias towards printable ASCII and newline: random weights would otherwise emit mostly
# invalid UTF-8, unreadable in a console; other bytes stay possible when sampling.
_PRINTABLE_BIAS = 2.0


def build_stage(spec: StageSpec) -> "TinyStage":
    return TinyStage(spec.config)


def _normal(seed: int, stream: int, index: int, shapes: list, scales: list) -> list:
    rng = np.random.default_rng([seed, stream, index])
    return [rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
            for shape, scale in zip(shapes, scales)]


def _to_integers(x: np.ndarray, levels: int, axis):
    """x = ints * scale with ints in [-levels, levels] and scale a power of two (per row for axis=-1)."""
    peak = np.abs(x).max(axis=axis, keepdims=True)
    _, exponent = np.frexp(peak / np.float32(levels))  # 2**exponent >= peak / levels
    scale = np.ldexp(np.float32(1), exponent)
    return np.rint(x / scale), scale


class _Linear:
    """x @ w computed exactly on integers (see the module docstring), scaled back by powers of two."""

    def __init__(self, w: np.ndarray):
        # Integers in [-L, L] with L*L*k <= 2**24: any sum of k products is an exact float32.
        self._levels = max(1, math.isqrt((1 << 24) // w.shape[0]))
        self._w, self._scale = _to_integers(w, self._levels, axis=None)

    @property
    def nbytes(self) -> int:
        return self._w.nbytes

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ints, scale = _to_integers(x, self._levels, axis=-1)
        return (ints @ self._w) * (scale * self._scale)


class _Layer:
    def __init__(self, c: TinyConfig, index: int):
        d, f = c.d_model, c.d_ff
        self.qkv, self.out, self.up, self.down = (_Linear(w) for w in _normal(
            c.seed, _LAYER, index, [(d, 3 * d), (d, d), (d, f), (f, d)],
            [d ** -0.5, d ** -0.5, d ** -0.5, f ** -0.5]))
        self.norm1 = np.ones(d, np.float32)
        self.norm2 = np.ones(d, np.float32)

    @property
    def nbytes(self) -> int:
        return (sum(m.nbytes for m in (self.qkv, self.out, self.up, self.down))
                + self.norm1.nbytes + self.norm2.nbytes)


class _KVCache:
    def __init__(self, n_layers: int, capacity: int, n_heads: int, head_dim: int):
        self.k = np.empty((n_layers, capacity, n_heads, head_dim), np.float32)
        self.v = np.empty((n_layers, capacity, n_heads, head_dim), np.float32)


def _rms_norm(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(RMS_EPS)) * gain


def _rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, start: int) -> np.ndarray:
    """q: (n, H, hd) at positions start..start+n-1; k, v: (start+n, H, hd). Returns (n, H, hd)."""
    n, s = q.shape[0], k.shape[0]
    scores = np.matmul(q.transpose(1, 0, 2), k.transpose(1, 2, 0)) * np.float32(q.shape[-1] ** -0.5)
    if n > 1:
        future = np.arange(s)[None, :] > (start + np.arange(n))[:, None]
        scores = np.where(future, np.float32(-np.inf), scores)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.matmul(scores, v.transpose(1, 0, 2)).transpose(1, 0, 2)


class TinyStage:
    def __init__(self, config: TinyStageConfig):
        started = time.monotonic()
        c = self._model = config.model
        self._config = config
        self._embed = (_normal(c.seed, _EMBED, 0, [(VOCAB_SIZE, c.d_model)], [1.0])[0]
                       if config.first else None)
        self._layers = [_Layer(c, i) for i in range(config.first_layer, config.end_layer)]
        if config.last:
            self._final_norm = np.ones(c.d_model, np.float32)
            self._head = _Linear(_normal(c.seed, _HEAD, 0, [(c.d_model, VOCAB_SIZE)],
                                         [c.d_model ** -0.5])[0])
            self._head_bias = np.zeros(VOCAB_SIZE, np.float32)
            self._head_bias[[10, *range(32, 127)]] = _PRINTABLE_BIAS
        half = c.head_dim // 2
        inv_freq = ROPE_BASE ** (-np.arange(half, dtype=np.float64) / half)
        angles = np.arange(c.max_model_len, dtype=np.float64)[:, None] * inv_freq[None, :]
        self._cos, self._sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
        self._caches: dict = {}
        self._samplers: dict = {}
        self._phases = {"weights": time.monotonic() - started}

    def report(self) -> dict:
        weights = sum(layer.nbytes for layer in self._layers)
        if self._config.first:
            weights += self._embed.nbytes
        if self._config.last:
            weights += self._head.nbytes + self._head_bias.nbytes + self._final_norm.nbytes
        return {"device": "cpu", "dtype": "float32", "host_memory_bytes": int(weights),
                "gpu_memory_bytes": 0, "phases": dict(self._phases)}

    def release(self) -> None:
        self._caches.clear()
        self._samplers.clear()

    def reacquire(self, weight_holder: Optional[str] = None) -> dict:
        return {}  # caches are allocated per request, as requests arrive; the weights were never released

    def step(self, request: StepRequest):
        for seq_id in request.free:
            self._caches.pop(seq_id, None)
            self._samplers.pop(seq_id, None)
        c = self._model
        for s in request.seqs:
            if s.new is not None:
                self._caches[s.seq_id] = _KVCache(len(self._layers), s.new.capacity, c.n_heads,
                                                  c.head_dim)
                if self._config.last:
                    self._samplers[s.seq_id] = Sampler(s.new.sampling)
        if not request.seqs:
            return StepResult([]) if self._config.last else request
        lengths = [len(s.token_ids) for s in request.seqs]
        positions = np.concatenate([np.arange(s.start, s.start + n)
                                    for s, n in zip(request.seqs, lengths)])
        if self._config.first:
            x = self._embed[np.concatenate([np.asarray(s.token_ids, np.int64) for s in request.seqs])]
        else:
            x = request.hidden
        cos, sin = self._cos[positions], self._sin[positions]
        for j, layer in enumerate(self._layers):
            x = self._layer(j, layer, x, request.seqs, lengths, cos, sin)
        if not self._config.last:
            request.hidden = x
            return request
        last_rows = np.cumsum(lengths) - 1
        logits = self._head(_rms_norm(x[last_rows], self._final_norm)) + self._head_bias
        samplers = [self._samplers[s.seq_id] for s in request.seqs]
        tokens = [sampler.sample(logits[i]) for i, sampler in enumerate(samplers)]
        return StepResult(tokens, [logprob(logits[i], token) if sampler.wants_logprob else None
                                   for i, (sampler, token) in enumerate(zip(samplers, tokens))])

    def _layer(self, j: int, layer: _Layer, x: np.ndarray, seqs: list, lengths: list,
               cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        c = self._model
        t, d, h, hd = x.shape[0], c.d_model, c.n_heads, c.head_dim
        qkv = layer.qkv(_rms_norm(x, layer.norm1))
        q = _rope(qkv[:, :d].reshape(t, h, hd), cos, sin)
        k = _rope(qkv[:, d:2 * d].reshape(t, h, hd), cos, sin)
        v = qkv[:, 2 * d:].reshape(t, h, hd)
        out = np.empty((t, h, hd), np.float32)
        row = 0
        for s, n in zip(seqs, lengths):
            cache, end = self._caches[s.seq_id], s.start + n
            cache.k[j, s.start:end] = k[row:row + n]
            cache.v[j, s.start:end] = v[row:row + n]
            out[row:row + n] = _attention(q[row:row + n], cache.k[j, :end], cache.v[j, :end], s.start)
            row += n
        x = x + layer.out(out.reshape(t, d))
        return x + layer.down(np.maximum(layer.up(_rms_norm(x, layer.norm2)), np.float32(0)))
