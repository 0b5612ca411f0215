"""Backends: each module offers plan(options) -> BackendPlan (frontend) and build_stage(spec) (core).

Modules are imported by name so that choosing one never imports another's dependencies (torch).
"""
from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from typing import Any

from ..options import EngineOptions, FailureCode, StartupError

MODULES = {
    "tiny": "engine_host.backends.tiny",
    "torch": "engine_host.backends.torch_backend",
}


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


def plan(options: EngineOptions) -> BackendPlan:
    module = MODULES.get(options.backend)
    if module is None:
        raise StartupError(FailureCode.UNKNOWN_BACKEND,
                           f"unknown backend {options.backend!r}; known: {', '.join(MODULES)}")
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
