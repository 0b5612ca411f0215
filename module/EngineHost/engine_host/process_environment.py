"""The environment every engine process runs with, set once by `python -m engine_host` before any backend is
imported; the cores and vLLM's own processes inherit it. setdefault: a value the user set wins."""
from __future__ import annotations

import os

DEFAULTS = {
    # libuv >= 1.45 (uvloop, under vLLM's frontend) may use io_uring, and CRIU cannot dump io_uring.
    "UV_USE_IO_URING": "0",
    # vLLM's usage reporting keeps a thread with HTTPS connections to the internet; a dump cannot carry an
    # established TCP connection to the outside.
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    # vLLM's workers start from a clean interpreter instead of a fork of a threaded process.
    "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
}


# The environment as the engine was started with it, before DEFAULTS and before a backend set anything
# (the vllm adapter sets VLLM_RPC_BASE_PATH to the run directory): what a checkpoint's environment hash is
# of, since the module compares it with the environment of the session that restores.
given: dict = {}


def apply_defaults() -> dict:
    """Sets each of DEFAULTS the environment does not have yet; returns those it set."""
    given.clear()
    given.update(os.environ)
    applied = {name: value for name, value in DEFAULTS.items() if name not in os.environ}
    os.environ.update(applied)
    return applied
