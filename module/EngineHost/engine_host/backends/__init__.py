"""Backends: each module offers plan(options) -> BackendPlan (frontend) and build_stage(spec) (core).

Modules are imported by name so that choosing one never imports another's dependencies (torch).
A backend that runs an engine of its own (vllm) sets BackendPlan.runtime instead of stage specs.
Each module also names, without importing any of them, the packages it needs (DEPENDENCIES), the model it
loads when none is given (DEFAULT_MODEL) and its built-in models (PRESETS, each described by the
module's describe_preset(name)): describe() reports them, and is what the PowerShell module asks, so both
sides know the same backends.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from typing import Any, Optional

from .. import inventory
from ..options import EngineOptions, FailureCode, StartupError

log = logging.getLogger("engine_host.backends")

# In the order `auto` prefers them.
MODULES = {
    "vllm": "engine_host.backends.vllm_backend",
    "torch": "engine_host.backends.torch_backend",
    "tiny": "engine_host.backends.tiny",
}
AUTO = "auto"
# What `auto` falls back to when no backend's packages are all found: the host then says what is missing.
LAST_RESORT = "tiny"


@dataclass
class BackendPlan:
    """Everything the frontend needs before the cores exist."""
    backend: str
    model: str
    stage_specs: list  # one StageSpec per core, in pipeline order
    tokenizer: Any  # encode(), detokenizer(), eos_token_id, vocab_size, name
    max_model_len: int
    max_num_seqs: int
    max_batched_tokens: int  # prompt tokens admitted into one step (at least one prompt always is)
    config_hash: str
    # A backend with its own engine and process model (vllm): an object with create(plan) -> an
    # engine offering the Pipeline calls the host makes, and scheduler_class. None: our core pipeline.
    runtime: Any = None
    vllm_version: Optional[str] = None  # hello's vllm_version (vllm backend only)


def missing_dependencies(backend: str) -> list:
    """The packages `backend` needs that this Python cannot find (finding is enough: importing torch or
    vLLM costs seconds)."""
    module = importlib.import_module(MODULES[backend])
    return [name for name in module.DEPENDENCIES if importlib.util.find_spec(name) is None]


def resolve(backend: str) -> str:
    """`auto`: the first backend, in MODULES order, whose packages this Python can all find."""
    if backend != AUTO:
        return backend
    return next((name for name in MODULES if not missing_dependencies(name)), LAST_RESORT)


def describe() -> dict:
    """Every backend with its default model, presets and availability, and what `auto` resolves to."""
    return {"backends": [_description(name) for name in MODULES], "auto": resolve(AUTO),
            "order": list(MODULES), "versions": inventory.runtime_versions()}


def _description(backend: str) -> dict:
    module = importlib.import_module(MODULES[backend])
    missing = missing_dependencies(backend)
    presets = [{"name": name, **module.describe_preset(name)} for name in module.PRESETS]
    description = {"name": backend, "default_model": module.DEFAULT_MODEL, "presets": presets,
                   "available": not missing}
    if missing:
        description["reason"] = f"this Python cannot import {' and '.join(missing)}"
    return description


def plan(options: EngineOptions) -> BackendPlan:
    if options.backend == AUTO:
        chosen = resolve(AUTO)
        log.info("backend auto: chose %s (missing: %s)", chosen,
                 {name: missing_dependencies(name) for name in MODULES})
        options = dataclasses.replace(options, backend=chosen)
    module = MODULES.get(options.backend)
    if module is None:
        raise StartupError(FailureCode.UNKNOWN_BACKEND,
                           f"unknown backend {options.backend!r}; known: {AUTO}, {', '.join(MODULES)}")
    return importlib.import_module(module).plan(options)


def config_hash(content: dict) -> str:
    """Stable hash of everything that shapes the engine's processes and memory."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def check_engine_args(engine_args: dict, allowed: dict) -> dict:
    """Validate engine args against {name: type}; returns them. Raises bad_engine_args."""
    unknown = sorted(set(engine_args) - set(allowed))
    if unknown:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                           f"unknown engine arg(s) {', '.join(unknown)}; known: {', '.join(allowed)}")
    for name, value in engine_args.items():
        kind = allowed[name]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if not ok:
            raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                               f"engine arg {name} must be {kind.__name__}, got {value!r}")
    return engine_args
