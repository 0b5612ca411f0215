"""The torch backend, core side: a transformers causal LM driven by our own forward pass over its
modules, with a preallocated KV pool and, on CUDA, the decode step captured as CUDA graphs.

Why our own forward: transformers' caches key positions by batch-wide `cache_position`, which cannot
express a batch whose sequences sit at different positions (continuous batching), and its cache APIs
change between releases. The modules themselves (projections, MLP, RMSNorm, rotary tables) are stable,
so we call those.

KV pool: one tensor [2, layers, slots + 1, kv_heads, max_model_len, head_dim], zero-filled (garbage
could be NaN, and NaN * 0 attention weight is still NaN). Each running sequence owns one slot; slot 0
is scratch that padded graph rows write into. Slots = what --gpu-memory-utilization leaves after the
weights and an activation reserve, capped by max_num_seqs.

Decode: each row writes its new K/V at (slot, position), gathers its slot's whole cache and attends
with a mask of positions <= its own. Shapes are static, so one CUDA graph per batch-size bucket is
captured and replayed with the real rows copied into static input buffers. Prefill runs eagerly, one
sequence at a time, with causal attention over the prompt.

release() drops graphs and pool and empties the CUDA cache (they must not be in a checkpoint image);
reacquire() allocates and captures again (graphs hold the pool's addresses, so they cannot outlive it).
With weights_from_source, release() also drops the weights and reacquire() first reads them back from the
model directory's safetensors files (backends/torch_weights.py), so a checkpoint holds no weight bytes; or,
given a weight holder's socket (engine_host/weight_holder.py), maps them from the holder's GPU memory. A
mapping of the holder's memory is never open when release() returns: a checkpoint could not carry it.
"""
from __future__ import annotations

import gc
import logging
import time
from typing import Optional

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

from .. import cuda_vmm, weight_share
from ..options import FailureCode, StartupError
from ..sampling import Sampler
from ..stage import StageSpec, StepRequest, StepResult
from . import torch_weights
from .torch_backend import TorchStageConfig

log = logging.getLogger("engine_host.torch")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_DEFAULT_MAX_NUM_SEQS = {"cuda": 256, "cpu": 8}
_ACTIVATION_RESERVE_BYTES = 1 << 30


def build_stage(spec: StageSpec) -> "TorchStage":
    return TorchStage(spec.config)


def _resolve_device(requested: str) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if requested == "cuda":
        raise StartupError(FailureCode.BACKEND_UNAVAILABLE, "--device cuda: CUDA is not available")
    return torch.device("cpu")


def random_preset_model(preset: dict, seed: int, device: torch.device, dtype: torch.dtype):
    """A preset's random weights. The random-model tool calls this too, so that a directory it writes
    holds the very weights the preset gets on the same kind of device with the same dtype and seed."""
    config = transformers.LlamaConfig(**preset)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:  # initialise the random weights where they will live
            model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _load_model(c: TorchStageConfig, device: torch.device, dtype: torch.dtype):
    if c.preset is not None:
        return random_preset_model(c.preset, c.seed, device, dtype)
    # transformers renamed torch_dtype to dtype in 4.56.
    version = tuple(int(p) for p in transformers.__version__.split(".")[:2] if p.isdigit())
    dtype_kw = "dtype" if version >= (4, 56) else "torch_dtype"
    AutoConfig.from_pretrained(c.model)  # fails early and clearly on a bad config
    model = AutoModelForCausalLM.from_pretrained(c.model, **{dtype_kw: dtype})
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class TorchStage:
    def __init__(self, c: TorchStageConfig):
        self._c = c
        self._phases: dict = {}
        self.device = _resolve_device(c.device)
        on_cuda = self.device.type == "cuda"
        self.dtype = _DTYPES.get(c.dtype) or (torch.bfloat16 if on_cuda else torch.float32)
        started = time.monotonic()
        self._model = _load_model(c, self.device, self.dtype)
        self._bind_modules()
        with torch.inference_mode():
            self._cos, self._sin = self._rotary_tables()
        if on_cuda:
            torch.cuda.synchronize()
        # weights_from_source: which parameters the directory's files hold (checked now, not at resume).
        self._source = (torch_weights.SourceWeights(self._model, c.model, self.device)
                        if c.weights_from_source else None)
        if self._source is not None and self._source.count == 0:
            raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                               f"weights_from_source: the safetensors files in {c.model} hold none of "
                               f"the model's parameters")
        self._weights_from: Optional[str] = None  # "holder" or "files": where the last reacquire got them
        if c.preset is None:  # from_pretrained read the files through host memory
            torch_weights.trim_host_memory()
        self._phases["weights"] = time.monotonic() - started
        log.info("weights loaded in %.2fs; process RSS %.3f GiB", self._phases["weights"],
                 torch_weights.resident_bytes() / 2**30)
        self._use_graphs = on_cuda and not c.enforce_eager
        # torch.cuda.Stream() hands out torch's pooled streams round-robin, and torch.cuda.graph captures on
        # one such stream by default: a weight loader thread's stream would sooner or later be the very
        # stream a capture runs on. Loaders take default-priority streams; captures run on this one, from
        # the high-priority pool, so the two never meet.
        self._capture_stream = torch.cuda.Stream(self.device, priority=-1) if self._use_graphs else None
        self._kv = None
        self._graphs: dict = {}
        self._slots = self._plan_slots()
        self._free_slots: list = []
        self._slot_of: dict = {}
        self._samplers: dict = {}
        self._phases.update(self._acquire(warm_up=True))

    # ------------------------------------------------------------ model access

    def _bind_modules(self) -> None:
        m = self._model
        config = m.config
        try:
            inner = m.model
            self._embed, self._norm, self._layers = inner.embed_tokens, inner.norm, list(inner.layers)
            self._lm_head = m.get_output_embeddings()
            for layer in self._layers:
                a = layer.self_attn
                (a.q_proj, a.k_proj, a.v_proj, a.o_proj, layer.mlp, layer.input_layernorm,
                 layer.post_attention_layernorm)
        except AttributeError as exc:
            raise StartupError(FailureCode.UNSUPPORTED_MODEL,
                               f"{type(m).__name__} does not have the Llama block layout: {exc}")
        self._n_heads = config.num_attention_heads
        self._n_kv_heads = getattr(config, "num_key_value_heads", None) or self._n_heads
        self._head_dim = getattr(config, "head_dim", None) or config.hidden_size // self._n_heads
        self._scaling = getattr(self._layers[0].self_attn, "scaling", self._head_dim ** -0.5)

    def _rotary_tables(self):
        """cos/sin [max_model_len, head_dim] from the model's own rotary module (rope scaling included)."""
        positions = torch.arange(self._c.max_model_len, device=self.device)[None]
        rotary = getattr(self._model.model, "rotary_emb", None)
        if rotary is not None:
            probe = torch.zeros(1, device=self.device, dtype=torch.float32)
            cos, sin = rotary(probe, positions)
            return cos[0].to(self.dtype), sin[0].to(self.dtype)
        theta = getattr(self._model.config, "rope_theta", 10000.0)
        inv_freq = 1.0 / theta ** (torch.arange(0, self._head_dim, 2, device=self.device,
                                                dtype=torch.float32) / self._head_dim)
        freqs = positions[0].float()[:, None] * inv_freq[None]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    # ------------------------------------------------------------ KV pool and graphs

    def _slot_bytes(self) -> int:
        return (2 * len(self._layers) * self._n_kv_heads * self._c.max_model_len * self._head_dim
                * torch.tensor([], dtype=self.dtype).element_size())

    def _plan_slots(self) -> int:
        cap = self._c.max_num_seqs or _DEFAULT_MAX_NUM_SEQS[self.device.type]
        if self.device.type != "cuda":
            return cap
        free, total = torch.cuda.mem_get_info(self.device)
        # A decode row also gathers its slot's cache (1/layers of a slot per layer, reused).
        per_slot = self._slot_bytes() * (1 + 1 / len(self._layers))
        prefill = self._c.max_batched_tokens * (self._model.config.hidden_size * 8
                                                + self._model.config.intermediate_size * 3) * 4
        budget = total * self._c.gpu_memory_utilization - (total - free) - prefill \
            - _ACTIVATION_RESERVE_BYTES
        slots = min(cap, int(budget // per_slot))
        if slots < 1:
            raise StartupError(FailureCode.STARTUP_FAILED,
                               f"not enough GPU memory for one sequence of {self._c.max_model_len} "
                               f"tokens: budget {budget / 2**30:.2f} GiB, one slot "
                               f"{per_slot / 2**30:.2f} GiB (raise --gpu-memory-utilization or lower "
                               f"--max-model-len)")
        return slots

    def _acquire(self, warm_up: bool, capture_mode: str = "global") -> dict:
        phases = {}
        started = time.monotonic()
        shape = (2, len(self._layers), self._slots + 1, self._n_kv_heads, self._c.max_model_len,
                 self._head_dim)
        self._kv = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._free_slots = list(range(self._slots, 0, -1))
        self._slot_of.clear()
        self._samplers.clear()
        self._sync()
        phases["kv_pool"] = time.monotonic() - started
        if self._use_graphs:
            started = time.monotonic()
            self._capture_graphs(warm_up, capture_mode)
            phases["cuda_graph"] = time.monotonic() - started
        log.info("KV pool: %d slots of %d tokens, %.2f GiB; graphs for batch sizes %s",
                 self._slots, self._c.max_model_len, self._kv.numel() * self._kv.element_size() / 2**30,
                 sorted(self._graphs) or "none")
        return phases

    def _capture_graphs(self, warm_up: bool, capture_mode: str) -> None:
        """capture_mode "thread_local" lets other threads (the weight loaders) use CUDA meanwhile."""
        sizes = [b for b in _GRAPH_BATCH_SIZES if b < self._slots] + [self._slots]
        largest = sizes[-1]
        self._static_ids = torch.zeros(largest, dtype=torch.long, device=self.device)
        self._static_pos = torch.zeros(largest, dtype=torch.long, device=self.device)
        self._static_slots = torch.zeros(largest, dtype=torch.long, device=self.device)
        pool = torch.cuda.graph_pool_handle()
        with torch.inference_mode():
            for b in reversed(sizes):  # largest first, so smaller graphs reuse its memory
                args = (self._static_ids[:b], self._static_pos[:b], self._static_slots[:b])
                if warm_up:
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        for _ in range(2):  # outside capture: lazy inits, autotuning (first start only)
                            self._decode_forward(*args)
                    torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool, stream=self._capture_stream,
                                      capture_error_mode=capture_mode):
                    logits = self._decode_forward(*args)
                self._graphs[b] = (graph, logits)
        torch.cuda.synchronize()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def release(self) -> None:
        self._graphs.clear()
        self._kv = None
        self._static_ids = self._static_pos = self._static_slots = None
        self._free_slots, self._slot_of, self._samplers = [], {}, {}
        if self._source is not None:
            self._source.release()
            self._weights_from = None
        gc.collect()
        if self.device.type == "cuda":
            if self._source is not None:
                torch_weights.release_cuda_memory(self.device)
            else:
                torch.cuda.synchronize(self.device)
                torch.cuda.empty_cache()
        if self._source is not None:
            torch_weights.trim_host_memory()
            log.info("released the KV pool, CUDA graphs and %.3f GiB of weights; GPU memory reserved: "
                     "%d bytes; process RSS %.3f GiB", self._source.nbytes / 2**30,
                     self._gpu_memory_bytes(), torch_weights.resident_bytes() / 2**30)
        if cuda_vmm.open_mappings():
            # A CUDA checkpoint of a process that maps memory another process exported cannot be restored.
            raise RuntimeError(f"{cuda_vmm.open_mappings()} mapping(s) of a weight holder's GPU memory are "
                               "still open after release; this engine must not be checkpointed")

    def reacquire(self, weight_holder: Optional[str] = None) -> dict:
        """weight_holder: a weight holder's socket to map released weights from, instead of reading them
        from the files (which is what happens when the holder cannot give them)."""
        if self._source is None or not self._source.released:
            # The process has run every kernel already (it was checkpointed serving): no warm-up passes.
            return self._acquire(warm_up=False)
        started = time.monotonic()
        if weight_holder is not None and self._map_from_holder(weight_holder):
            phases = {"weights": time.monotonic() - started}
            phases.update(self._acquire(warm_up=False))
            return phases
        # Graph capture records kernels without running them, so it only needs the weights' new addresses:
        # it runs while the loader threads fill them, and nothing reads a weight before wait() returns.
        loading = self._source.start_reload()
        try:
            acquired = self._acquire(warm_up=False, capture_mode="thread_local")
        finally:
            threads = loading.wait()
        seconds = time.monotonic() - started
        self._weights_from = "files"
        log.info("weights reloaded from safetensors: %.3f GiB in %.3fs (%.2f GB/s) with %d thread(s), "
                 "the KV pool and CUDA graphs made meanwhile", self._source.nbytes / 2**30, seconds,
                 self._source.nbytes / max(seconds, 1e-9) / 1e9, threads)
        return {"weights": seconds, **acquired}

    def _map_from_holder(self, path: str) -> bool:
        """True once every released parameter views (or was copied from) the holder's memory; False, with
        a warning naming why, when the weights are to be read from the files instead."""
        started = time.monotonic()
        try:
            views = self._source.map_from_holder(path)
        except (weight_share.HolderMismatch, OSError, RuntimeError) as exc:  # CudaError and torch's too
            log.warning("weights not mapped from the weight holder at %s (%s: %s); reading the files",
                        path, type(exc).__name__, exc)
            return False
        self._weights_from = "holder"
        log.info("weights mapped from the weight holder at %s: %d parameter(s), %d of them views of its "
                 "memory (read-only), %.3f GiB in %.3fs", path, self._source.count, views,
                 self._source.nbytes / 2**30, time.monotonic() - started)
        return True

    def _gpu_memory_bytes(self) -> int:
        return torch.cuda.memory_reserved(self.device) if self.device.type == "cuda" else 0

    def _weight_bytes(self) -> int:
        """Weights resident now (parameters released for a checkpoint count 0)."""
        return sum(p.numel() * p.element_size() for p in self._model.parameters())

    def report(self) -> dict:
        on_cuda = self.device.type == "cuda"
        pool = 0 if self._kv is None else self._kv.numel() * self._kv.element_size()
        name = torch.cuda.get_device_name(self.device) if on_cuda else "cpu"
        return {
            "device": f"{self.device} ({name})" if on_cuda else "cpu",
            "dtype": str(self.dtype).replace("torch.", ""),
            "host_memory_bytes": 0 if on_cuda else self._weight_bytes() + pool,
            "gpu_memory_bytes": self._gpu_memory_bytes(),
            "kv_pool_bytes": pool,
            "max_num_seqs": self._slots,
            "weight_mappings": cuda_vmm.open_mappings(),
            **({} if self._weights_from is None else {"weights_from": self._weights_from}),
            "phases": dict(self._phases),
        }

    # ------------------------------------------------------------ forward

    def _attention_block(self, layer, x, cos, sin, write, attend):
        """Shared by prefill and decode: norm, q/k/v, rotary, cache write, attention, o_proj, MLP."""
        a = layer.self_attn
        b, t, _ = x.shape
        r = layer.input_layernorm(x)
        q = a.q_proj(r).view(b, t, self._n_heads, self._head_dim)
        k = a.k_proj(r).view(b, t, self._n_kv_heads, self._head_dim)
        v = a.v_proj(r).view(b, t, self._n_kv_heads, self._head_dim).transpose(1, 2)
        if hasattr(a, "q_norm"):  # Qwen3 normalises q and k per head before rotary
            q, k = a.q_norm(q), a.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        write(k, v)
        o = attend(q, k, v)
        x = x + a.o_proj(o.transpose(1, 2).reshape(b, t, self._n_heads * self._head_dim))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def _decode_forward(self, ids: torch.Tensor, pos: torch.Tensor, slots: torch.Tensor):
        """One token per row; rows at any positions in any slots. Static shapes (graph-capturable)."""
        x = self._embed(ids)[:, None, :]
        cos, sin = self._cos[pos][:, None, None, :], self._sin[pos][:, None, None, :]
        keys = torch.arange(self._c.max_model_len, device=ids.device)
        mask = (keys[None, :] <= pos[:, None])[:, None, None, :]
        for i, layer in enumerate(self._layers):
            k_pool, v_pool = self._kv[0, i], self._kv[1, i]

            def write(k, v, k_pool=k_pool, v_pool=v_pool):
                k_pool[slots, :, pos] = k[:, :, 0]
                v_pool[slots, :, pos] = v[:, :, 0]

            def attend(q, k, v, k_pool=k_pool, v_pool=v_pool):
                return torch.nn.functional.scaled_dot_product_attention(
                    q, k_pool[slots], v_pool[slots], attn_mask=mask, scale=self._scaling,
                    enable_gqa=True)

            x = self._attention_block(layer, x, cos, sin, write, attend)
        return self._lm_head(self._norm(x[:, 0])).float()

    def _prefill_forward(self, ids: torch.Tensor, slot: int):
        """A whole prompt of one sequence, positions 0..n-1; logits of its last position."""
        n = ids.shape[0]
        x = self._embed(ids)[None]
        cos, sin = self._cos[:n][None, None], self._sin[:n][None, None]
        for i, layer in enumerate(self._layers):
            k_pool, v_pool = self._kv[0, i], self._kv[1, i]

            def write(k, v, k_pool=k_pool, v_pool=v_pool):
                k_pool[slot, :, :n] = k[0]
                v_pool[slot, :, :n] = v[0]

            def attend(q, k, v):
                return torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, scale=self._scaling, enable_gqa=True)

            x = self._attention_block(layer, x, cos, sin, write, attend)
        return self._lm_head(self._norm(x[:, -1])).float()

    def _decode(self, rows: list) -> torch.Tensor:
        """rows: [(token, position, slot)] → logits [len(rows), vocab]."""
        n = len(rows)
        ids, pos, slots = (torch.tensor(col, dtype=torch.long) for col in zip(*rows))
        if not self._use_graphs:
            return self._decode_forward(ids.to(self.device), pos.to(self.device),
                                        slots.to(self.device))
        size = next(b for b in sorted(self._graphs) if b >= n)
        graph, logits = self._graphs[size]
        for static, values in ((self._static_ids, ids), (self._static_pos, pos),
                               (self._static_slots, slots)):
            static[:n].copy_(values)
            static[n:size].zero_()  # padded rows: token 0 at position 0 of scratch slot 0
        graph.replay()
        return logits[:n]

    def step(self, request: StepRequest):
        for seq_id in request.free:
            slot = self._slot_of.pop(seq_id, None)
            if slot is not None:
                self._free_slots.append(slot)
            self._samplers.pop(seq_id, None)
        if not request.seqs:
            return StepResult([])
        with torch.inference_mode():
            logits = [None] * len(request.seqs)
            decode_rows, decode_index = [], []
            for i, s in enumerate(request.seqs):
                if s.new is not None:
                    if not self._free_slots:
                        raise RuntimeError("KV pool exhausted (scheduler admitted too many sequences)")
                    self._slot_of[s.seq_id] = self._free_slots.pop()
                    self._samplers[s.seq_id] = Sampler(s.new.sampling)
                slot = self._slot_of[s.seq_id]
                if len(s.token_ids) == 1 and s.start > 0:
                    decode_rows.append((s.token_ids[0], s.start, slot))
                    decode_index.append(i)
                else:
                    if s.start != 0:
                        raise RuntimeError("a multi-token chunk must start at position 0")
                    ids = torch.tensor(s.token_ids, dtype=torch.long, device=self.device)
                    logits[i] = self._prefill_forward(ids, slot)[0]
            if decode_rows:
                batch_logits = self._decode(decode_rows)
                for row, i in enumerate(decode_index):
                    logits[i] = batch_logits[row]
            return self._sample(request.seqs, logits)

    def _sample(self, seqs: list, logits: list) -> StepResult:
        samplers = [self._samplers[s.seq_id] for s in seqs]
        stacked = torch.stack(logits)
        greedy = stacked.argmax(dim=-1).tolist()  # first index on ties, as numpy's argmax
        tokens = [g if sampler.greedy else sampler.sample(row.cpu().numpy().astype(np.float32))
                  for g, sampler, row in zip(greedy, samplers, stacked)]
        logprobs = [None] * len(seqs)
        wanted = [i for i, sampler in enumerate(samplers) if sampler.wants_logprob]
        if wanted:  # float32 log-softmax of the float32 logits, on the device
            rows = torch.log_softmax(stacked[wanted].float(), dim=-1)
            for row, i in zip(rows, wanted):
                logprobs[i] = float(row[tokens[i]])
        return StepResult(tokens, logprobs)
