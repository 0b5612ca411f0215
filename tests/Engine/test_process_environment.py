"""The environment the engine host gives itself and every process it starts, so that a checkpoint is
possible."""
from __future__ import annotations

import os

from engine_host import process_environment

DEFAULTS = process_environment.DEFAULTS
USER_SET = "VLLM_WORKER_MULTIPROC_METHOD"


def _environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = (kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        return {k.decode(): v.decode() for k, v in pairs}


def test_a_value_the_user_set_wins(monkeypatch):
    monkeypatch.setenv(USER_SET, "fork")
    for name in set(DEFAULTS) - {USER_SET}:
        monkeypatch.delenv(name, raising=False)
    applied = process_environment.apply_defaults()
    assert applied == {k: v for k, v in DEFAULTS.items() if k != USER_SET}
    assert os.environ[USER_SET] == "fork"


def test_the_cores_start_with_the_defaults(monkeypatch, start_engine):
    # /proc/PID/environ is the environment a process was started with: the frontend's own is the test's,
    # its cores' is what the frontend gave them.
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    engine = start_engine("--model", "tiny-4m", "--workers", "2")
    cores = [p["pid"] for p in engine.ready["pids"] if p["role"].startswith("core")]
    assert len(cores) == 2
    for pid in cores:
        environ = _environ(pid)
        assert {name: environ.get(name) for name in DEFAULTS} == DEFAULTS
