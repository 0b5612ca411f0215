"""The run directory handshake: atomic ready.json / failed.json, phase.json, the resume FIFO path; and a
weight holder's ready.json and failed.json.

The launcher polls the run directory, so a file is either absent or complete: each is written to a
temporary name in the same directory, fsynced, then renamed over the final name.
"""
from __future__ import annotations

import json
import os
from typing import Any

READY = "ready.json"
FAILED = "failed.json"
PHASE = "phase.json"
RESUME_FIFO = "resume.fifo"


def _write_atomic(run_dir: str, name: str, content: Any, durable: bool = True) -> None:
    final = os.path.join(run_dir, name)
    temp = os.path.join(run_dir, f".{name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2)
        f.write("\n")
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(temp, final)


def _remove(run_dir: str, name: str) -> None:
    try:
        os.unlink(os.path.join(run_dir, name))
    except FileNotFoundError:
        pass


def clear(run_dir: str) -> None:
    """Remove handshake files a previous run left, so the launcher never reads a stale one."""
    _remove(run_dir, READY)
    _remove(run_dir, FAILED)
    _remove(run_dir, PHASE)


def write_ready(run_dir: str, endpoint: str, pids: list, phases: dict, **extra: Any) -> None:
    _write_atomic(run_dir, READY, {"endpoint": endpoint, "pids": pids, "phases": phases, **extra})


def write_holder_ready(run_dir: str, **fields: Any) -> None:
    """A weight holder's ready.json (engine_host/weight_holder.py): its own fields, written the same way."""
    _write_atomic(run_dir, READY, fields)


def write_phase(run_dir: str, phase: str) -> None:
    """What the cold start does now, for the launcher's progress bar: a hint, so not worth an fsync."""
    _write_atomic(run_dir, PHASE, {"phase": phase}, durable=False)


def remove_ready(run_dir: str) -> None:
    _remove(run_dir, READY)


def write_failed(run_dir: str, code: str, message: str) -> None:
    _write_atomic(run_dir, FAILED, {"code": code, "message": message})


def resume_fifo_path(run_dir: str) -> str:
    return os.path.join(run_dir, RESUME_FIFO)


def run_dir_from(argv: list):
    """--run-dir DIR or --run-dir=DIR of a command line, even when the rest of it is bad (so failed.json can
    still be written); None without one."""
    for i, arg in enumerate(argv):
        if arg == "--run-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--run-dir="):
            return arg.split("=", 1)[1]
    return None
