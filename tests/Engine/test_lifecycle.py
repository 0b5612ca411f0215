"""Engine lifecycle: startup failures, --workers, shutdown, signals, a core's death."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import time

import pytest

from conftest import TINY_ARGS, pid_alive

PROMPTS = ["Hello", "The quick brown fox", "Once upon a time", "zzz"]


def _failed(engine) -> dict:
    code = engine.wait_exit(30)
    assert code != 0
    assert not os.path.exists(engine.path("ready.json"))
    with open(engine.path("failed.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("args, code", [
    (["--backend", "vllm-nope"], "unknown_backend"),
    (["--model", "/no/such/model"], "model_not_found"),
    (["--backend", "torch", "--model", "/no/such/model"], "model_not_found"),
    (["--model", "tiny-4m", "--engine-args", '{"d_model": -1}'], "bad_engine_args"),
    (["--model", "tiny-4m", "--engine-args", '{"n_heads": 5}'], "bad_engine_args"),
    (["--model", "tiny-4m", "--engine-args", '{"bogus": 1}'], "bad_engine_args"),
    (["--model", "tiny-4m", "--engine-args", "not json"], "bad_engine_args"),
    (["--model", "tiny-4m", "--engine-args", "[1]"], "bad_engine_args"),
    (["--model", "tiny-4m", "--workers", "10"], "bad_engine_args"),
    (["--model", "tiny-4m", "--device", "cuda"], "bad_engine_args"),
    (["--model", "tiny-4m", "--port", "http"], "bad_engine_args"),
    (["--model", "tiny-4m", "--engine-args", '{"d_model": 1000000000000, "n_heads": 1}'],
     "startup_failed"),
])
def test_startup_failure_writes_failed_json_and_exits_non_zero(start_engine, args, code):
    engine = start_engine(*args, wait=False)
    failed = _failed(engine)
    assert failed["code"] == code and failed["message"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_torch_backend_unavailable_without_torch(start_engine):
    engine = start_engine("--backend", "torch", "--model", "llama-tiny", wait=False)
    assert _failed(engine)["code"] == "backend_unavailable"


def test_a_cold_start_names_each_phase_as_it_begins_in_phase_json(start_engine):
    engine = start_engine(*TINY_ARGS)
    with open(engine.path("phase.json")) as f:
        assert json.load(f) == {"phase": "bind"}  # the last phase before ready.json


def test_a_port_in_use_fails_startup(start_engine):
    first = start_engine(*TINY_ARGS)
    port = first.ready["endpoint"].rsplit(":", 1)[1]
    second = start_engine(*TINY_ARGS, "--port", port, wait=False)
    failed = _failed(second)
    assert failed["code"] == "startup_failed" and "in use" in failed["message"]


def test_a_failed_core_start_leaves_no_process(start_engine):
    engine = start_engine("--model", "tiny-4m", "--workers", "2", "--engine-args",
                          '{"d_model": 1000000000000, "n_heads": 1}', wait=False)
    assert _failed(engine)["code"] == "startup_failed"
    children = os.popen(f"ps -o pid= --ppid {engine.pid}").read().split()
    assert children == []


def _greedy(engine, prompts, max_tokens=30):
    c = engine.client()
    alone = [c.generate(p, max_tokens=max_tokens, ignore_eos=True)["text"] for p in prompts]
    ids = [c.send("generate", {"prompt": p, "max_tokens": max_tokens, "ignore_eos": True})
           for p in prompts]
    return alone, [c.replies(i)[-1]["text"] for i in ids]


def test_greedy_output_does_not_depend_on_workers(start_engine):
    one = start_engine("--model", "tiny-16m")
    two = start_engine("--model", "tiny-16m", "--workers", "2")
    three = start_engine("--model", "tiny-16m", "--workers", "3")
    hello = two.client().call("hello")
    assert hello["workers"] == 2
    assert [p["role"] for p in hello["pids"]] == ["frontend", "core-0", "core-1"]
    assert hello["config_hash"] != one.client().call("hello")["config_hash"]
    reference = _greedy(one, PROMPTS)
    assert reference[0] == reference[1]
    assert _greedy(two, PROMPTS) == reference
    assert _greedy(three, PROMPTS) == reference


def test_shutdown_aborts_in_flight_exits_0_and_leaves_no_process(start_engine):
    engine = start_engine(*TINY_ARGS, "--workers", "2")
    pids = [p["pid"] for p in engine.ready["pids"]]
    c = engine.client()
    rid = c.send("generate", {"prompt": "long", "max_tokens": 4000, "ignore_eos": True})
    time.sleep(0.05)
    reply = c.call("shutdown")
    assert reply["kind"] == "final" and set(reply) == {"v", "id", "kind"}
    final = c.replies(rid)[-1]
    assert final["finish_reason"] == "abort"
    assert engine.wait_exit(30) == 0
    assert not any(pid_alive(p) for p in pids)
    assert not os.path.exists(engine.path("ready.json"))
    assert not os.path.exists(engine.path("failed.json"))


def test_sigterm_shuts_down_gracefully(start_engine):
    engine = start_engine(*TINY_ARGS)
    pids = [p["pid"] for p in engine.ready["pids"]]
    os.kill(engine.pid, signal.SIGTERM)
    assert engine.wait_exit(30) == 0
    assert not any(pid_alive(p) for p in pids)


def test_a_dead_core_fails_in_flight_requests_and_the_engine_exits(start_engine):
    engine = start_engine(*TINY_ARGS, "--workers", "2")
    pids = {p["role"]: p["pid"] for p in engine.ready["pids"]}
    c = engine.client()
    rid = c.send("generate", {"prompt": "doomed", "max_tokens": 4000, "stream": True,
                              "ignore_eos": True})
    assert c.recv_any()["kind"] == "chunk"
    os.kill(pids["core-1"], signal.SIGKILL)
    final = c.replies(rid)[-1]
    assert final["kind"] == "error" and final["code"] == "engine_error"
    assert "core-1" in final["message"]
    assert engine.wait_exit(30) == 3
    assert not any(pid_alive(p) for p in pids.values())
    with open(engine.path("failed.json")) as f:
        assert json.load(f)["code"] == "core_died"
    assert not os.path.exists(engine.path("ready.json"))


def test_an_idle_engine_notices_a_dead_core(start_engine):
    engine = start_engine(*TINY_ARGS)
    core = engine.ready["pids"][1]["pid"]
    os.kill(core, signal.SIGKILL)
    assert engine.wait_exit(30) == 3
