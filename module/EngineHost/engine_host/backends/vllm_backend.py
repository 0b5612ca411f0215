"""The vllm backend, frontend side: check the options and engine args without importing vLLM, and plan
an AsyncLLM (vllm_engine.py runs it).

vLLM has its own process model: AsyncLLM (the client half, in this frontend process) starts vLLM's
EngineCore process, which runs the scheduler and the model (and its own workers for tensor/pipeline
parallelism). So this backend plans no core pipeline of ours: BackendPlan.runtime carries the engine.
docs/vllm.md says which vLLM code this follows.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from ..options import EngineOptions, FailureCode, StartupError
from . import BackendPlan

DEPENDENCIES = ("vllm",)
# vLLM loads hub names and model directories; it has no built-in model, so -Model is always needed.
DEFAULT_MODEL = None
PRESETS: dict = {}
# Engine args this adapter consumes itself; every other key goes to vLLM's AsyncEngineArgs as is.
# weights_from_source (the torch backend's name for "drop the weights, read them again on resume") is
# sleep level 2 here.
ADAPTER_ARGS = {"sleep_level": int, "weights_from_source": bool}
SLEEP_LEVELS = (1, 2)
# Level 2 as vLLM's snapshot server releases (vllm/snapshot/server.py _release_reloadable_state): no weights
# in the image, reloaded from the model files at resume, after a rehearsal at startup. Level 1 keeps them.
DEFAULT_SLEEP_LEVEL = 2
# AsyncEngineArgs fields that have a command-line option of their own.
_FROM_COMMAND_LINE = {"model": "--model", "dtype": "--dtype", "max_model_len": "--max-model-len",
                      "gpu_memory_utilization": "--gpu-memory-utilization"}
_DTYPES = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclass(frozen=True)
class VllmSettings:
    """What the engine is built from (JSON-able, so it can be hashed and logged)."""
    model: str  # as given (a hub name, or a path made absolute)
    engine_args: dict  # keyword arguments of vllm.engine.arg_utils.AsyncEngineArgs
    sleep_level: int  # vLLM sleep level used by prepare_checkpoint (1 or 2)
    run_dir: str


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~"))


def plan(options: EngineOptions) -> BackendPlan:
    if not options.model:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           "the vllm backend needs --model (a Hugging Face model name or a model directory)")
    model = options.model
    if _looks_like_path(model):
        model = os.path.abspath(os.path.expanduser(model))
        if not os.path.isdir(model):
            raise StartupError(FailureCode.MODEL_NOT_FOUND, f"model {model!r}: no such directory")
    if options.workers != 1:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           "the vllm backend runs one vLLM engine (--workers 1); use the engine arg "
                           "tensor_parallel_size to spread a model over GPUs")
    if options.device != "auto":
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           "the vllm backend takes --device auto only: vLLM's build decides its device")
    args = dict(options.engine_args)
    for name, option in _FROM_COMMAND_LINE.items():
        if name in args:
            raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                               f"engine arg {name}: give it as {option} instead")
    weights_from_source = args.pop("weights_from_source", False)
    if not isinstance(weights_from_source, bool):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "engine arg weights_from_source must be a boolean")
    sleep_level = args.pop("sleep_level", 2 if weights_from_source else DEFAULT_SLEEP_LEVEL)
    if isinstance(sleep_level, bool) or sleep_level not in SLEEP_LEVELS:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           f"engine arg sleep_level must be 1 or 2, got {sleep_level!r}")
    if weights_from_source and sleep_level != 2:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           "weights_from_source is sleep_level 2 for the vllm backend; sleep_level "
                           f"{sleep_level} contradicts it")
    if not isinstance(args.get("enable_sleep_mode", True), bool):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "engine arg enable_sleep_mode must be a boolean")
    if any(importlib.util.find_spec(name) is None for name in DEPENDENCIES):
        raise StartupError(FailureCode.BACKEND_UNAVAILABLE,
                           "the vllm backend needs vLLM, which this Python cannot import (point the "
                           "launcher's Python at a vLLM environment)")
    engine_args = {"model": model, "dtype": _DTYPES[options.dtype],
                   "gpu_memory_utilization": options.gpu_memory_utilization,
                   # prepare_checkpoint sleeps the engine to drop its KV cache; sleep mode must be on
                   # from the start (vLLM allocates through its CuMem pool only then).
                   "enable_sleep_mode": True, **args}
    if options.max_model_len is not None:
        engine_args["max_model_len"] = options.max_model_len
    from .vllm_engine import VllmRuntime  # imports no vLLM at module level

    settings = VllmSettings(model=model, engine_args=engine_args, sleep_level=sleep_level,
                            run_dir=options.run_dir)
    # The rest is only known once vLLM has built its config: VllmRuntime fills it in.
    return BackendPlan(
        backend="vllm", model=options.model, stage_specs=[], tokenizer=None,
        max_model_len=options.max_model_len or 0, max_num_seqs=0, max_batched_tokens=0,
        config_hash="", runtime=VllmRuntime(settings))
