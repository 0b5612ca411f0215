"""python -m engine_host --run-dir DIR [options]: parse the command line and run the engine.
python -m engine_host --describe-backends: print the backends this Python can run, as JSON, and exit.
python -m engine_host --check-dependencies: print which of the packages every backend needs this Python cannot
import, and whether its libzmq has CURVE, as JSON, and exit (the module picks its interpreter with it).

Command-line mistakes are startup failures like any other: they go to DIR/failed.json
(code bad_engine_args) when the run directory is known, and the exit code is non-zero.
"""
from __future__ import annotations

import time

_T0 = time.monotonic()

import argparse  # noqa: E402  (imports are part of the timed 'import' phase)
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from . import logs, process_environment, runinfo  # noqa: E402
from .options import EngineOptions, FailureCode, StartupError  # noqa: E402

log = logging.getLogger("engine_host")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, f"command line: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine_host", description="CriuCheckpoint engine host")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run-dir", help="handshake directory (ready.json, failed.json)")
    what.add_argument("--describe-backends", action="store_true",
                      help="print the backends, their default models and presets, and what auto resolves to")
    what.add_argument("--check-dependencies", action="store_true",
                      help="print the packages every backend needs that this Python cannot import, and CURVE")
    p.add_argument("--backend", default="tiny",
                   help="tiny (numpy, default), torch, vllm, "
                        "or auto (vllm if importable, else torch, else tiny)")
    p.add_argument("--model", default=None, help="preset name or model directory")
    p.add_argument("--workers", type=int, default=1, help="core processes (pipeline stages)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--engine-args", default="{}", help="JSON object of backend-specific options")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: an ephemeral port")
    return p


def _options(a: argparse.Namespace) -> EngineOptions:
    try:
        engine_args = json.loads(a.engine_args)
    except json.JSONDecodeError as exc:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, f"--engine-args is not JSON: {exc}")
    if not isinstance(engine_args, dict):
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "--engine-args must be a JSON object")
    if a.workers < 1:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "--workers must be >= 1")
    if a.max_model_len is not None and a.max_model_len < 2:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "--max-model-len must be >= 2")
    if not 0 < a.gpu_memory_utilization <= 1:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "--gpu-memory-utilization must be in (0, 1]")
    if not 0 <= a.port <= 65535:
        raise StartupError(FailureCode.BAD_ENGINE_ARGS, "--port must be in [0, 65535]")
    return EngineOptions(run_dir=os.path.abspath(a.run_dir), backend=a.backend, model=a.model,
                         workers=a.workers, device=a.device, dtype=a.dtype,
                         max_model_len=a.max_model_len,
                         gpu_memory_utilization=a.gpu_memory_utilization,
                         engine_args=engine_args, host=a.host, port=a.port)


def _process_age() -> float:
    """Seconds since exec, interpreter start-up included (falls back to time since this module ran)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _T0


# The third-party packages every backend needs; a missing one is the user's environment, not a bug.
_DEPENDENCIES = ("zmq", "msgpack", "numpy")


def _import_host():
    try:
        from .host import EngineHost
    except ModuleNotFoundError as exc:
        if exc.name not in _DEPENDENCIES:
            raise
        raise StartupError(FailureCode.MISSING_DEPENDENCY,
                           f"{sys.executable} cannot import {exc.name}; the engine host needs pyzmq, msgpack "
                           "and numpy (Debian: apt-get install python3-zmq python3-msgpack python3-numpy)")
    return EngineHost


def _check_dependencies() -> int:
    """Imports each package: one that is found can still fail to load (a pyzmq without its libzmq)."""
    missing = []
    for name in _DEPENDENCIES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    curve = "zmq" not in missing and importlib.import_module("zmq").has("curve")
    print(json.dumps({"missing": missing, "curve": curve}))
    return 0


def _describe_backends() -> int:
    from . import backends

    print(json.dumps(backends.describe()))
    return 0


def main(argv=None) -> int:
    process_environment.apply_defaults()
    argv = sys.argv[1:] if argv is None else argv
    logs.setup("frontend")
    try:
        arguments = _parser().parse_args(argv)
        if arguments.describe_backends:
            return _describe_backends()
        if arguments.check_dependencies:
            return _check_dependencies()
        options = _options(arguments)
        engine_host = _import_host()
    except StartupError as exc:
        log.error("startup failed: %s: %s", exc.code, exc.message)
        run_dir = runinfo.run_dir_from(argv)
        if run_dir:
            os.makedirs(run_dir, exist_ok=True)
            runinfo.write_failed(run_dir, exc.code, exc.message)
        return 2
    # Private to the engine's owner: whoever can read it holds the link's client key (docs/protocol.md).
    os.makedirs(options.run_dir, mode=0o700, exist_ok=True)
    log.info("engine_host pid %d: %s", os.getpid(), options)
    return engine_host(options, _process_age()).run()


if __name__ == "__main__":
    sys.exit(main())
