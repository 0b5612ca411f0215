"""The tiny backend, frontend side: presets, engine args, the layer split across cores.

The model itself (numpy) is backends/tiny_stage.py, imported only in the cores: the frontend never
loads numpy, whose BLAS thread pool would otherwise sit in the frontend process (and its checkpoint).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..options import EngineOptions, FailureCode, StartupError
from ..stage import StageSpec
from ..tokenizer import ByteTokenizer
from . import BackendPlan, check_engine_args, config_hash

# The frontend plans without numpy; the cores (tiny_stage) compute with it.
DEPENDENCIES = ("numpy",)
VOCAB_SIZE = 257
EOS_TOKEN_ID = 256
DEFAULT_MODEL = "tiny-256m"
DEFAULT_MAX_MODEL_LEN = 512

# d_ff = 4 * d_model; 9 layers each, so any --workers up to 9 splits them.
PRESETS = {
    "tiny-256m": {"d_model": 768, "n_layers": 9, "n_heads": 12, "d_ff": 3072},
    "tiny-64m": {"d_model": 384, "n_layers": 9, "n_heads": 6, "d_ff": 1536},
    "tiny-16m": {"d_model": 192, "n_layers": 9, "n_heads": 3, "d_ff": 768},
    "tiny-4m": {"d_model": 96, "n_layers": 9, "n_heads": 3, "d_ff": 384},
}


def describe_preset(name: str) -> dict:
    """What Get-EngineModel shows of a preset: its shape in words and its parameter count (tiny_stage's
    tensors)."""
    shape = PRESETS[name]
    d, f, layers = shape["d_model"], shape["d_ff"], shape["n_layers"]
    per_layer = 3 * d * d + d * d + 2 * d * f + 2 * d  # qkv, out, up and down, two norms
    # The embedding, the layers, the final norm, the head and its bias.
    parameters = VOCAB_SIZE * d + layers * per_layer + d + d * VOCAB_SIZE + VOCAB_SIZE
    return {"description": f"numpy, {layers} layers of {d}, random weights",
            "parameters": parameters}


ENGINE_ARGS = {"d_model": int, "n_layers": int, "n_heads": int, "d_ff": int, "seed": int,
               "max_num_seqs": int, "max_batched_tokens": int, "weights_from_source": bool}


@dataclass(frozen=True)
class TinyConfig:
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    seed: int
    max_model_len: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class TinyStageConfig:
    model: TinyConfig
    first_layer: int
    end_layer: int
    first: bool  # holds the embedding
    last: bool  # holds the final norm, the LM head and the samplers


# ---------------------------------------------------------------- frontend side

def plan(options: EngineOptions) -> BackendPlan:
    model = options.model or DEFAULT_MODEL
    if model not in PRESETS:
        raise StartupError(FailureCode.MODEL_NOT_FOUND,
                           f"tiny has no model {model!r}; presets: {', '.join(PRESETS)}")
    args = check_engine_args(options.engine_args, ENGINE_ARGS)
    if options.device not in ("auto", "cpu"):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "the tiny backend runs on the CPU only")
    if options.dtype not in ("auto", "float32"):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "the tiny backend computes in float32 only")
    if args.get("weights_from_source", False):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           "weights_from_source is for the torch backend with a model directory; the "
                           "tiny backend builds its weights in memory")
    shape = {**PRESETS[model], **{k: v for k, v in args.items() if k in PRESETS[model]}}
    config = TinyConfig(seed=args.get("seed", 0),
                        max_model_len=options.max_model_len or DEFAULT_MAX_MODEL_LEN, **shape)
    _validate(config, options.workers)
    workers = options.workers
    specs = []
    for i in range(workers):
        lo, hi = i * config.n_layers // workers, (i + 1) * config.n_layers // workers
        specs.append(StageSpec("engine_host.backends.tiny_stage",
                               TinyStageConfig(config, lo, hi, i == 0, i == workers - 1), i, workers))
    return BackendPlan(
        backend="tiny", model=model, stage_specs=specs,
        tokenizer=ByteTokenizer(VOCAB_SIZE, EOS_TOKEN_ID),
        max_model_len=config.max_model_len,
        max_num_seqs=args.get("max_num_seqs", 64),
        max_batched_tokens=args.get("max_batched_tokens", 2048),
        config_hash=config_hash({"backend": "tiny", "model": model, "config": asdict(config),
                                 "workers": workers}))


def _validate(c: TinyConfig, workers: int) -> None:
    problems = [f"{name} must be >= 1" for name in ("d_model", "n_layers", "n_heads", "d_ff")
                if getattr(c, name) < 1]
    if not problems:
        if c.d_model % c.n_heads or c.head_dim % 2:
            problems.append("d_model must be n_heads * an even head size")
        if not 1 <= workers <= c.n_layers:
            problems.append(f"--workers must be between 1 and n_layers ({c.n_layers})")
    if c.max_model_len < 2:
        problems.append("max_model_len must be >= 2")
    if c.seed < 0:
        problems.append("seed must be >= 0")
    if problems:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "; ".join(problems))
