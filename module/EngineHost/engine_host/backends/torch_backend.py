"""The torch backend, frontend side: resolve the model (preset or directory), check that torch and
transformers can be imported (without importing them), pick the tokenizer, plan one core.

The core side is backends/torch_stage.py, imported only inside the core process, so neither the
frontend nor the tiny path ever imports torch.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from typing import Optional

from .. import safetensors_files
from ..options import EngineOptions, FailureCode, StartupError
from ..stage import StageSpec
from ..tokenizer import ByteTokenizer, HFTokenizer
from . import BackendPlan, check_engine_args, config_hash

DEPENDENCIES = ("torch", "transformers")
DEFAULT_MODEL = "llama-1b"
DEFAULT_MAX_MODEL_LEN = 2048

# Llama shapes built in code with random weights (no download, no files).
PRESETS = {
    "llama-1b": {"hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32,
                 "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000,
                 "max_position_embeddings": 2048, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
                 "bos_token_id": 1, "eos_token_id": 2},
    "llama-8b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
                 "max_position_embeddings": 8192, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
                 "bos_token_id": 128000, "eos_token_id": 128001},
    "llama-tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "intermediate_size": 344, "vocab_size": 1024,
                   "max_position_embeddings": 1024, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
                   "bos_token_id": 1, "eos_token_id": 2},
}

_PRESET_SHAPES = {"llama-1b": "TinyLlama-1.1B's shape", "llama-8b": "Llama-3-8B's shape",
                  "llama-tiny": "tiny Llama for CPU tests"}


def describe_preset(name: str) -> dict:
    """What Get-EngineModel shows of a preset: whose shape it has and its parameter count (LlamaConfig's
    modules, input and output embeddings untied)."""
    c = PRESETS[name]
    hidden, vocab = c["hidden_size"], c["vocab_size"]
    kv = hidden // c["num_attention_heads"] * c["num_key_value_heads"]
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * c["intermediate_size"] + 2 * hidden
    parameters = 2 * vocab * hidden + c["num_hidden_layers"] * per_layer + hidden
    return {"description": f"{_PRESET_SHAPES[name]}, random weights", "parameters": parameters}


# Decoder-only models whose blocks have the Llama layout (q/k/v/o projections, gated MLP, RMSNorm);
# the stage runs its own forward over their modules.
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")

ENGINE_ARGS = {"seed": int, "max_num_seqs": int, "max_batched_tokens": int, "enforce_eager": bool,
               "weights_from_source": bool}

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


@dataclass(frozen=True)
class TorchStageConfig:
    model: str  # preset name or absolute directory
    preset: Optional[dict]  # the preset's config, None for a directory
    device: str  # auto | cpu | cuda
    dtype: str  # auto | float32 | bfloat16 | float16
    max_model_len: int
    gpu_memory_utilization: float
    max_num_seqs: Optional[int]  # None: the device's default
    max_batched_tokens: int
    seed: int
    enforce_eager: bool  # no CUDA graph
    # Drop the weights for a checkpoint and read them back from the directory's safetensors on resume.
    weights_from_source: bool = False


def plan(options: EngineOptions) -> BackendPlan:
    model = options.model or DEFAULT_MODEL
    args = check_engine_args(options.engine_args, ENGINE_ARGS)
    preset = PRESETS.get(model)
    if preset is not None:
        hf_config, identity = preset, {"preset": model, "config": preset}
    else:
        model = os.path.abspath(model)
        hf_config = _read_config(model)
        with open(os.path.join(model, "config.json"), "rb") as f:
            identity = {"path": model, "config_sha256": hashlib.sha256(f.read()).hexdigest()}
    weights_from_source = args.get("weights_from_source", False)
    if weights_from_source and preset is not None:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           f"weights_from_source needs --model to be a local directory with *.safetensors "
                           f"files; {model!r} is a preset whose random weights exist only in memory")
    if weights_from_source and not safetensors_files.has_safetensors(model):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           f"weights_from_source needs --model to be a local directory with *.safetensors "
                           f"files; {model} has none")
    model_type = hf_config.get("model_type", "llama")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise StartupError(FailureCode.UNSUPPORTED_MODEL,
                           f"model_type {model_type!r} is not supported; supported: "
                           f"{', '.join(SUPPORTED_MODEL_TYPES)}")
    missing = [m for m in DEPENDENCIES if importlib.util.find_spec(m) is None]
    if missing:
        raise StartupError(FailureCode.BACKEND_UNAVAILABLE,
                           f"the torch backend needs {' and '.join(missing)}, which cannot be imported")
    if options.workers != 1:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "the torch backend runs one core (--workers 1)")
    positions = hf_config.get("max_position_embeddings", DEFAULT_MAX_MODEL_LEN)
    max_model_len = options.max_model_len or min(positions, DEFAULT_MAX_MODEL_LEN)
    if max_model_len > positions:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           f"--max-model-len {max_model_len} exceeds the model's {positions} positions")
    for name in ("max_num_seqs", "max_batched_tokens"):
        if args.get(name, 1) < 1:
            raise StartupError(FailureCode.BAD_ENGINE_ARGS, f"{name} must be >= 1")
    if args.get("seed", 0) < 0:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "seed must be >= 0")

    vocab_size = hf_config["vocab_size"]
    eos = hf_config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) else eos
    eos = -1 if eos is None else eos
    if preset is None and any(os.path.exists(os.path.join(model, f)) for f in _TOKENIZER_FILES):
        tokenizer = HFTokenizer(model, vocab_size, eos)
    else:
        tokenizer = ByteTokenizer(vocab_size, eos)

    max_batched_tokens = args.get("max_batched_tokens", max_model_len)
    stage = TorchStageConfig(
        model=model, preset=preset, device=options.device, dtype=options.dtype,
        max_model_len=max_model_len, gpu_memory_utilization=options.gpu_memory_utilization,
        max_num_seqs=args.get("max_num_seqs"), max_batched_tokens=max_batched_tokens,
        seed=args.get("seed", 0), enforce_eager=args.get("enforce_eager", False),
        weights_from_source=weights_from_source)
    stage_identity = asdict(stage)
    if not weights_from_source:  # the hash of every engine that does not use it stays what it was
        del stage_identity["weights_from_source"]
    return BackendPlan(
        backend="torch", model=options.model or DEFAULT_MODEL,
        stage_specs=[StageSpec("engine_host.backends.torch_stage", stage, 0, 1)],
        tokenizer=tokenizer, max_model_len=max_model_len,
        max_num_seqs=args.get("max_num_seqs", 256), max_batched_tokens=max_batched_tokens,
        config_hash=config_hash({"backend": "torch", **identity, "stage": stage_identity}))


def _read_config(path: str) -> dict:
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        what = "directory has no config.json" if os.path.isdir(path) else "no such directory"
        raise StartupError(FailureCode.MODEL_NOT_FOUND,
                           f"model {path!r}: {what}; presets: {', '.join(PRESETS)}")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise StartupError(FailureCode.MODEL_NOT_FOUND, f"cannot read {config_path}: {exc}")
    if not isinstance(config, dict) or not isinstance(config.get("vocab_size"), int):
        raise StartupError(FailureCode.MODEL_NOT_FOUND, f"{config_path} has no integer vocab_size")
    return config
