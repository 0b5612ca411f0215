"""The vllm backend, through the real engine host process, against the vLLM test double.

vLLM cannot be installed here, so the engine runs with tests/Engine/vllm_double on its PYTHONPATH: a
package named `vllm` that mirrors the module paths, signatures and behaviour the adapter uses (see its
__init__.py for the vLLM commit it follows). Its engine core is a real process started as vLLM starts it
(multiprocessing spawn, ZeroMQ ipc sockets, process titles), so killing it is an engine death as in vLLM.
Expected outputs come from the double's own deterministic rule.
"""
from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from types import SimpleNamespace

import pytest

from conftest import VLLM_ARGS as ARGS
from conftest import VLLM_DOUBLE as DOUBLE
from conftest import VLLM_ENV, pid_alive, serving_engine, wait_for
from conftest import VLLM_MODEL as MODEL
REAL_VLLM_HERE = importlib.util.find_spec("vllm") is not None  # before the double is importable
PROMPTS = ["Hello", "The quick brown fox", "abc", "Once upon a time", "0123456789", "Ünïcödé ✓"]


@pytest.fixture(scope="module")
def double():
    """The double's modules in this process (for expected values); removed again afterwards, so the
    double is on sys.path only while the vllm tests run."""
    sys.path.insert(0, DOUBLE)
    try:
        import vllm
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind, SamplingParams
        from vllm.tokenizers import EOS, ByteFallbackTokenizer
        from vllm.v1.engine import core
        from vllm.v1.engine.async_llm import AsyncLLM

        yield SimpleNamespace(version=vllm.__version__, AsyncEngineArgs=AsyncEngineArgs,
                              tokenizer=ByteFallbackTokenizer(), eos=EOS,
                              reference=core.reference_generate, EngineCore=core.EngineCore,
                              AsyncLLM=AsyncLLM, SamplingParams=SamplingParams,
                              RequestOutputKind=RequestOutputKind)
    finally:
        sys.path.remove(DOUBLE)
        for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def vllm_engine(tmp_path_factory, zmq_context):
    with serving_engine(tmp_path_factory, "vllm", ARGS, zmq_context, VLLM_ENV) as engine:
        yield engine


@pytest.fixture
def client(vllm_engine):
    c = vllm_engine.client()
    yield c
    c.close()


def _start(start_engine, *extra, env=None, wait=True, run_dir=None):
    return start_engine(*ARGS, *extra, env={**VLLM_ENV, **(env or {})}, wait=wait, run_dir=run_dir)


def _expected(double, prompt, max_tokens, ignore_eos=True, **kw):
    """(token_ids, text, finish_reason) the adapter must report for one request."""
    ids, reason = double.reference(double.tokenizer.encode(prompt), max_tokens, ignore_eos, **kw)
    if reason == "stop":  # the EOS that ended it is not part of the result
        ids = ids[:-1]
    return ids, double.tokenizer.decode(ids), reason


def _failed(engine) -> dict:
    assert engine.wait_exit(30) != 0
    assert not os.path.exists(engine.path("ready.json"))
    with open(engine.path("failed.json")) as f:
        return json.load(f)


def _prepare_resume(engine, **prepare_args) -> dict:
    c = engine.client()
    reply = c.call("prepare_checkpoint", prepare_args)
    assert reply["kind"] == "final" and reply["state"] == "prepared", reply
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="ready.json removed")
    engine.write_resume(port=0)
    wait_for(lambda: os.path.exists(engine.path("ready.json")), what="ready.json after resume")
    return engine.wait_ready()


def _core_events(engine) -> list:
    """What the double's EngineCore logged of the checkpoint hooks, sleep and wake-up, in order, once the
    engine served (the sleep level 2 rehearsal at startup makes the same calls before)."""
    marks = ("collective_rpc ", "fall asleep (level ", "wake_up ")
    events = []
    lines = engine.log().splitlines()
    serving = next(i for i, line in enumerate(lines) if "ready on tcp://" in line)
    for line in lines[serving:]:
        if "EngineCore pid=" in line:
            message = line.split(": ", 1)[1]
            for mark in marks:
                if mark in message:
                    events.append(message[message.index(mark):].split(")")[0] + (")" if "(" in mark else ""))
    return events


def _core_pid(engine) -> int:
    return next(p["pid"] for p in engine.ready["pids"] if p["role"] == "EngineCore")


# ---------------------------------------------------------------- describing the engine


def test_hello_and_ready_json_describe_the_vllm_engine(client, vllm_engine, double):
    h = client.call("hello")
    assert h["kind"] == "final" and h["backend"] == "vllm" and h["model"] == MODEL
    assert h["vllm_version"] == double.version
    config = double.AsyncEngineArgs(model=MODEL, max_model_len=4096, enable_sleep_mode=True,
                                    dtype="auto", gpu_memory_utilization=0.9).create_engine_config()
    assert h["config_hash"] == config.compute_hash() and len(h["config_hash"]) == 10
    assert h["device"] == "cuda:0 (Double GPU)" and h["dtype"] == "bfloat16" and h["workers"] == 1
    assert h["tokenizer"] == "hf:ByteFallbackTokenizer" and h["vocab_size"] == 259
    assert h["eos_token_id"] == double.eos and h["max_model_len"] == 4096 and h["max_num_seqs"] == 256
    assert h["capabilities"] == ["generate", "stream", "abort", "batch", "checkpoint"]
    # Labelled by the titles vLLM gives its processes; spawning the EngineCore started multiprocessing's
    # resource tracker.
    assert sorted(p["role"] for p in h["pids"]) == ["EngineCore", "frontend", "resource_tracker"]
    assert h["pids"] == vllm_engine.ready["pids"] and h["state"] == "ready"
    r = vllm_engine.ready
    assert r["backend"] == "vllm" and r["vllm_version"] == double.version
    assert r["config_hash"] == h["config_hash"]
    assert list(r["phases"]) == ["import", "plan", "import_backend", "engine", "warmup", "rehearsal", "bind"]


def _spawned_environment(engine) -> dict:
    """The environment vLLM's processes start with, as exec'd: read from the resource tracker, since a process
    that set its title (setproctitle) no longer shows its environment in /proc."""
    tracker = next(p["pid"] for p in engine.ready["pids"] if p["role"] == "resource_tracker")
    with open(f"/proc/{tracker}/environ", "rb") as f:
        return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


def test_the_launch_environment_is_set_for_a_checkpoint(vllm_engine):
    env = _spawned_environment(vllm_engine)
    assert env[b"UV_USE_IO_URING"] == b"0" and env[b"VLLM_NO_USAGE_STATS"] == b"1"
    assert env[b"VLLM_WORKER_MULTIPROC_METHOD"] == b"spawn"


@pytest.fixture
def short_run_dir():
    """A run directory whose path is short enough for vLLM's ipc socket paths inside it; requested before
    start_engine, so it is removed after the engine has stopped."""
    path = tempfile.mkdtemp(prefix="vllm-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_frontend_and_the_engine_core_talk_over_ipc_sockets_in_the_run_directory(
        short_run_dir, start_engine):
    engine = _start(start_engine, run_dir=short_run_dir)
    ipc_dir = engine.run_dir
    assert _spawned_environment(engine)[b"VLLM_RPC_BASE_PATH"] == ipc_dir.encode()
    sockets = [os.path.join(ipc_dir, name) for name in os.listdir(ipc_dir) if len(name) == 36]
    assert sockets and all(stat.S_ISSOCK(os.stat(path).st_mode) for path in sockets)
    # The frontend binds them (its listening and accepted sockets carry their paths); the core connects to
    # them (unnamed unix sockets) and holds no socket of any other family.
    with open("/proc/net/unix") as f:
        unix = {fields[6]: fields[7] if len(fields) > 7 else "" for fields in map(str.split, list(f)[1:])}
    frontend, core = _socket_inodes(engine.pid), _socket_inodes(_core_pid(engine))
    assert {inode for inode, path in unix.items() if path.startswith(ipc_dir + "/")} <= frontend
    assert len({inode for inode in core if unix.get(inode) == ""}) >= 2 and core <= set(unix)
    assert engine.client().generate("over ipc", max_tokens=3)["kind"] == "final"


def _socket_inodes(pid: int) -> set:
    links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    return {link[len("socket:["):-1] for link in links if link.startswith("socket:")}


# ---------------------------------------------------------------- generation


def test_greedy_generation_is_vllms_output(client, double):
    for prompt in PROMPTS:
        ids, text, reason = _expected(double, prompt, 24)
        r = client.generate(prompt, max_tokens=24, ignore_eos=True)
        assert (r["token_ids"], r["text"], r["finish_reason"]) == (ids, text, reason)
        assert r["prompt_tokens"] == len(prompt.encode()) + 1  # vLLM's tokenizer adds BOS
        assert r["completion_tokens"] == 24 and 0 < r["ttft_s"] <= r["duration_s"]


def test_end_of_sequence_ends_the_request_and_is_not_returned(client, double):
    prompt = next(p for p in (f"eos probe {i}" for i in range(500))
                  if _expected(double, p, 60, ignore_eos=False)[2] == "stop")
    ids, text, _ = _expected(double, prompt, 60, ignore_eos=False)
    r = client.generate(prompt, max_tokens=60)
    assert (r["finish_reason"], r["token_ids"], r["text"]) == ("stop", ids, text)
    assert double.eos not in r["token_ids"]
    # ignore_eos: the EOS is generated like any token, returned, and adds no text.
    full = client.generate(prompt, max_tokens=60, ignore_eos=True)
    assert full["finish_reason"] == "length" and full["completion_tokens"] == 60
    assert full["token_ids"][len(ids)] == double.eos and full["text"].startswith(text)


def test_requests_in_flight_are_batched_and_give_the_same_tokens(client, double):
    ids = [client.send("generate", {"prompt": p, "max_tokens": 40, "ignore_eos": True}) for p in PROMPTS]
    finals = [client.replies(i)[-1] for i in ids]
    assert [f["token_ids"] for f in finals] == [_expected(double, p, 40)[0] for p in PROMPTS]
    assert client.call("health")["in_flight"] == 0


def test_stream_chunks_concatenate_to_the_final_result(client):
    replies = client.replies(client.send("generate", {"prompt": "Stream me", "max_tokens": 40,
                                                      "stream": True, "ignore_eos": True}))
    chunks, final = replies[:-1], replies[-1]
    assert final["kind"] == "final" and len(chunks) >= 2 and all(c["kind"] == "chunk" for c in chunks)
    assert "".join(c["text"] for c in chunks) == final["text"]
    assert [t for c in chunks for t in c["token_ids"]] == final["token_ids"]
    assert client.generate("Stream me", max_tokens=40, ignore_eos=True)["text"] == final["text"]


def test_seeded_sampling_is_reproducible(client, double):
    args = {"max_tokens": 30, "temperature": 1.0, "top_p": 0.9, "ignore_eos": True}
    a = client.generate("Seeded", seed=7, **args)["token_ids"]
    assert a == _expected(double, "Seeded", 30, temperature=1.0, seed=7)[0]
    assert a == client.generate("Seeded", seed=7, **args)["token_ids"]
    assert a != client.generate("Seeded", seed=8, **args)["token_ids"]


def test_sampling_parameters_vllm_refuses_are_bad_requests(client):
    r = client.generate("x", temperature=3.0)  # the protocol allows it; vLLM allows [0, 2]
    assert r["kind"] == "error" and r["code"] == "bad_request"
    assert "temperature must be in [0, 2]" in r["message"]
    assert client.generate("still serving", max_tokens=3)["kind"] == "final"


@pytest.mark.parametrize("args, code", [
    ({"prompt": "x", "max_tokens": 4096}, "prompt_too_long"),  # BOS + 1 byte + 4096 > 4096
    ({"prompt": "y" * 4000, "max_tokens": 100}, "prompt_too_long"),
    ({"prompt": "x", "max_token": 5}, "bad_request"),
    ({"prompt": ""}, "bad_request"),
])
def test_bad_requests_get_errors_and_the_engine_serves_on(client, args, code):
    r = client.call("generate", args)
    assert r["kind"] == "error" and r["code"] == code and r["message"]
    assert client.generate("alive", max_tokens=2)["kind"] == "final"


# ---------------------------------------------------------------- checkpoint: sleep and wake up


def test_prepare_sleeps_vllm_and_resume_wakes_it(start_engine, double):
    engine = _start(start_engine, "--engine-args", '{"sleep_level": 1}')
    c = engine.client()
    before = [c.generate(p, max_tokens=20, ignore_eos=True)["token_ids"] for p in PROMPTS]
    running = c.send("generate", {"prompt": "finish me", "max_tokens": 200, "ignore_eos": True})
    prepare = c.send("prepare_checkpoint", {"drain_timeout_s": 30})
    late = c.send("generate", {"prompt": "too late"})
    assert c.replies(late)[-1]["code"] == "not_ready"
    assert c.replies(running)[-1]["finish_reason"] == "length"
    reply = c.replies(prepare)[-1]
    assert reply["state"] == "prepared" and reply["aborted"] == 0
    assert reply["resume_fifo"] == engine.path("resume.fifo")
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="ready.json removed")
    assert "fall asleep (level 1)" in engine.log()
    # The link is closed: no TCP socket is left. Unix sockets stay (the vLLM loop's asyncio self-pipe is a
    # socketpair; in vLLM the frontend <-> EngineCore ZeroMQ ipc sockets too), both ends in the tree.
    with open("/proc/net/unix") as f:
        unix = {line.split()[6] for line in list(f)[1:]}
    for pid in [p["pid"] for p in engine.ready["pids"]]:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        sockets = {link[len("socket:["):-1] for link in links if link.startswith("socket:")}
        assert sockets <= unix, (pid, links)
    engine.write_resume(port=0)
    wait_for(lambda: os.path.exists(engine.path("ready.json")), what="ready.json after resume")
    ready = engine.wait_ready()
    assert list(ready["phases"]) == ["resume_reacquire", "resume_wake_up", "resume_checkpoint_restore",
                                     "resume_canary", "resume_bind"]
    assert ready["config_hash"] == engine.client().call("hello")["config_hash"]
    # vLLM's order: the communicators are prepared before the engine sleeps and restored after it wakes.
    assert _core_events(engine) == ["collective_rpc checkpoint_prepare", "fall asleep (level 1)",
                                    "wake_up all", "collective_rpc checkpoint_restore"]
    c2 = engine.client()
    assert c2.call("health")["state"] == "ready"
    assert [c2.generate(p, max_tokens=20, ignore_eos=True)["token_ids"] for p in PROMPTS] == before


@pytest.mark.parametrize("engine_args", ['{"sleep_level": 2}', '{"weights_from_source": true}'])
def test_sleep_level_2_discards_the_weights_and_resume_reloads_them(start_engine, engine_args):
    engine = _start(start_engine, "--engine-args", engine_args)
    before = engine.client().generate("Hello", max_tokens=20, ignore_eos=True)["token_ids"]
    ready = _prepare_resume(engine)
    assert list(ready["phases"]) == ["resume_reacquire", "resume_wake_up_weights",
                                     "resume_reload_weights", "resume_wake_up_kv_cache",
                                     "resume_checkpoint_restore", "resume_canary", "resume_bind"]
    assert _core_events(engine) == ["collective_rpc checkpoint_prepare", "fall asleep (level 2)",
                                    "wake_up ['weights']", "collective_rpc reload_weights",
                                    "wake_up ['kv_cache']", "collective_rpc checkpoint_restore"]
    # The double generates garbage with weights woken but not reloaded: equal output proves the reload.
    assert engine.client().generate("Hello", max_tokens=20, ignore_eos=True)["token_ids"] == before


def test_prepare_aborts_in_flight_on_request_and_at_the_drain_timeout(start_engine):
    engine = _start(start_engine)
    c = engine.client()
    first = c.send("generate", {"prompt": "abort me", "max_tokens": 4000, "ignore_eos": True})
    reply = c.call("prepare_checkpoint", {"abort_in_flight": True})
    assert reply["state"] == "prepared" and reply["aborted"] == 1
    assert c.replies(first)[-1]["finish_reason"] == "abort"
    engine.write_resume()
    wait_for(lambda: os.path.exists(engine.path("ready.json")), what="resume")
    engine.wait_ready()
    c2 = engine.client()
    slow = c2.send("generate", {"prompt": "too slow", "max_tokens": 4000, "ignore_eos": True})
    started = time.monotonic()
    reply = c2.call("prepare_checkpoint", {"drain_timeout_s": 0.3})
    assert reply["state"] == "prepared" and reply["aborted"] == 1
    assert time.monotonic() - started >= 0.3
    assert c2.replies(slow)[-1]["finish_reason"] == "abort"


def test_a_sleep_that_fails_fails_prepare_and_the_engine_serves_on(start_engine):
    engine = _start(start_engine, "--engine-args", '{"sleep_level": 1}',
                    env={"VLLM_DOUBLE_SLEEP_ERROR": "CUDA error: out of memory"})
    c = engine.client()
    reply = c.call("prepare_checkpoint")
    assert reply["kind"] == "error" and reply["code"] == "engine_error"
    assert "Call to sleep method failed: CUDA error: out of memory" in reply["message"]
    assert "serves on" in reply["message"]
    # vLLM paused its scheduler before the failed sleep; the adapter woke it and restored its communicators.
    assert _core_events(engine) == ["collective_rpc checkpoint_prepare", "wake_up all",
                                    "collective_rpc checkpoint_restore"]
    assert c.call("health")["state"] == "ready" and os.path.exists(engine.path("ready.json"))
    assert c.generate("after", max_tokens=5, ignore_eos=True)["finish_reason"] == "length"


@pytest.mark.parametrize("how", ["platform", "engine_arg"])
def test_without_sleep_mode_prepare_fails_clearly_and_the_engine_serves_on(start_engine, how):
    if how == "platform":  # like vLLM's CPU build: enable_sleep_mode=True would fail at startup
        engine = _start(start_engine, env={"VLLM_DOUBLE_PLATFORM": "cpu"})
        assert "has no sleep mode" in engine.log()
        assert engine.client().call("hello")["device"] == "cpu"
    else:
        engine = _start(start_engine, "--engine-args", '{"enable_sleep_mode": false}')
    c = engine.client()
    reply = c.call("prepare_checkpoint")
    assert reply["kind"] == "error" and reply["code"] == "engine_error"
    assert "sleep mode is off" in reply["message"]
    assert c.generate("still here", max_tokens=4)["kind"] == "final"


def test_a_wake_up_that_fails_is_a_resume_failure(start_engine):
    engine = _start(start_engine, "--engine-args", '{"sleep_level": 1}',
                    env={"VLLM_DOUBLE_WAKE_ERROR": "cannot map memory"})
    pids = [p["pid"] for p in engine.ready["pids"]]
    assert engine.client().call("prepare_checkpoint")["state"] == "prepared"
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    engine.write_resume()
    failed = _failed(engine)
    assert failed["code"] == "resume_failed" and "cannot map memory" in failed["message"]
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="vLLM's processes to end")


@pytest.mark.parametrize("engine_args, workers", [
    ('{"tensor_parallel_size": 2}', ["Worker_TP0", "Worker_TP1"]),
    ('{"pipeline_parallel_size": 2}', ["Worker_PP0", "Worker_PP1"]),
    ('{"tensor_parallel_size": 2, "pipeline_parallel_size": 2}',
     ["Worker_PP0_TP0", "Worker_PP0_TP1", "Worker_PP1_TP0", "Worker_PP1_TP1"]),
])
def test_an_engine_on_several_gpus_is_refused_before_anything_is_released(start_engine, engine_args,
                                                                          workers):
    engine = _start(start_engine, "--engine-args", engine_args)
    roles = [p["role"] for p in engine.ready["pids"]]
    assert sorted(roles) == sorted(["frontend", "EngineCore", "resource_tracker"] + workers)
    c = engine.client()
    running = c.send("generate", {"prompt": "keep going", "max_tokens": 60, "ignore_eos": True})
    reply = c.call("prepare_checkpoint", {"abort_in_flight": True})
    assert reply["kind"] == "error" and reply["code"] == "checkpoint_unsupported"
    assert "NCCL" in reply["message"] and "serves on" in reply["message"]
    # Refused before the drain: the request in flight was not aborted, nothing was prepared or released.
    assert c.replies(running)[-1]["finish_reason"] == "length"
    assert _core_events(engine) == []
    assert c.call("health")["state"] == "ready" and os.path.exists(engine.path("ready.json"))
    assert c.generate("still serving", max_tokens=4)["kind"] == "final"


def test_sigterm_while_prepared_ends_vllm_too(start_engine):
    engine = _start(start_engine)
    pids = [p["pid"] for p in engine.ready["pids"]]
    assert engine.client().call("prepare_checkpoint")["state"] == "prepared"
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    os.kill(engine.pid, signal.SIGTERM)
    assert engine.wait_exit(30) == 0
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="vLLM's processes to end")


# ---------------------------------------------------------------- the double itself


def test_the_doubles_checkpoint_hooks_refuse_vllms_order_broken(double):
    core = double.EngineCore({"max_model_len": 64, "enable_sleep_mode": True, "world_size": 1},
                             write=lambda message: None)
    core.collective_rpc("checkpoint_restore")  # nothing prepared: nothing to do, as FlashInfer's hooks
    core.collective_rpc("checkpoint_prepare")
    core.sleep(1)
    with pytest.raises(RuntimeError, match="checkpoint_restore while the executor sleeps"):
        core.collective_rpc("checkpoint_restore")
    with pytest.raises(RuntimeError, match="checkpoint_prepare while the executor sleeps"):
        core.collective_rpc("checkpoint_prepare")
    core.wake_up()
    core.collective_rpc("checkpoint_restore")
    assert not core.communicators_prepared and not core.is_sleeping()


def test_the_doubles_generate_has_logprobs_for_a_canary(double, monkeypatch, tmp_path):
    """vLLM's snapshot canary: temperature 0, max_tokens 1, seed 0, logprobs 0; the sampled token's logprob
    is the same on every run, and changes when the weights are not what they were."""
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    monkeypatch.setenv("VLLM_RPC_BASE_PATH", str(tmp_path))

    async def canaries() -> list:
        args = double.AsyncEngineArgs(model=MODEL, max_model_len=256, enable_sleep_mode=True)
        llm = double.AsyncLLM.from_engine_args(args)
        try:
            async def canary(request_id: str, logprobs: int = 0):
                params = double.SamplingParams(temperature=0, max_tokens=1, seed=0, logprobs=logprobs,
                                               output_kind=double.RequestOutputKind.FINAL_ONLY)
                return [o async for o in llm.generate("The capital of France is", params, request_id)][-1]

            outputs = [await canary("a"), await canary("b", logprobs=3)]
            await llm.sleep(2)
            await llm.wake_up()  # weights back in place but not reloaded: what vLLM computes is garbage
            outputs.append(await canary("c"))
            return outputs
        finally:
            llm.shutdown()

    first, top3, garbage = asyncio.run(canaries())
    (token,) = first.outputs[0].token_ids
    assert token == double.reference(double.tokenizer.encode("The capital of France is"), 1)[0][0]
    sampled = first.outputs[0].logprobs[0][token]
    assert sampled.rank == 1 and sampled.logprob < 0
    assert first.outputs[0].cumulative_logprob == sampled.logprob
    assert top3.outputs[0].token_ids == [token] and top3.outputs[0].logprobs[0][token] == sampled
    assert sorted(p.rank for p in top3.outputs[0].logprobs[0].values()) == [1, 2, 3]
    (wrong,) = garbage.outputs[0].token_ids
    assert (wrong, garbage.outputs[0].logprobs[0][wrong].logprob) != (token, sampled.logprob)


# ---------------------------------------------------------------- failures and shutdown


def test_a_dead_engine_core_fails_requests_and_the_engine_exits(start_engine):
    engine = _start(start_engine)
    core = _core_pid(engine)
    c = engine.client()
    rid = c.send("generate", {"prompt": "doomed", "max_tokens": 4000, "stream": True,
                              "ignore_eos": True})
    assert c.recv_any()["kind"] == "chunk"
    os.kill(core, signal.SIGKILL)
    final = c.replies(rid)[-1]
    assert final["kind"] == "error" and final["code"] == "engine_error"
    assert "engine core died" in final["message"] and f"pid {core}" in final["message"]
    assert engine.wait_exit(30) == 3
    with open(engine.path("failed.json")) as f:
        assert json.load(f)["code"] == "core_died"
    assert not os.path.exists(engine.path("ready.json"))


def test_an_idle_engine_notices_a_dead_engine_core(start_engine):
    engine = _start(start_engine)
    os.kill(_core_pid(engine), signal.SIGKILL)
    assert engine.wait_exit(30) == 3
    with open(engine.path("failed.json")) as f:
        assert json.load(f)["code"] == "core_died"


def test_shutdown_aborts_in_flight_and_ends_vllms_processes(start_engine):
    engine = _start(start_engine)
    pids = [p["pid"] for p in engine.ready["pids"]]
    c = engine.client()
    rid = c.send("generate", {"prompt": "long", "max_tokens": 4000, "ignore_eos": True})
    time.sleep(0.05)
    assert c.call("shutdown")["kind"] == "final"
    assert c.replies(rid)[-1]["finish_reason"] == "abort"
    assert engine.wait_exit(30) == 0
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="vLLM's processes to end")
    assert not os.path.exists(engine.path("failed.json"))


def test_a_model_directory(start_engine, tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"vocab_size": 259, "eos_token_id": 2,
                                                   "max_position_embeddings": 1024,
                                                   "torch_dtype": "float16"}))
    engine = start_engine("--backend", "vllm", "--model", str(model), "--dtype", "bfloat16",
                          env=VLLM_ENV)
    h = engine.client().call("hello")
    assert h["model"] == str(model) and h["max_model_len"] == 1024 and h["dtype"] == "bfloat16"


@pytest.mark.parametrize("args, env, code", [
    (["--backend", "vllm"], {}, "bad_engine_args"),  # no --model
    (["--backend", "vllm", "--model", "/no/such/model"], {}, "model_not_found"),
    (["--backend", "vllm", "--model", "no-org/no-such-model"], {}, "model_not_found"),
    (ARGS + ["--engine-args", '{"tensor_parallel_sise": 2}'], {}, "bad_engine_args"),
    (ARGS + ["--engine-args", '{"dtype": "half"}'], {}, "bad_engine_args"),
    (ARGS + ["--engine-args", '{"sleep_level": 3}'], {}, "bad_engine_args"),
    (ARGS + ["--engine-args", '{"sleep_level": 1, "weights_from_source": true}'], {}, "bad_engine_args"),
    (ARGS + ["--workers", "2"], {}, "bad_engine_args"),
    (ARGS + ["--device", "cpu"], {}, "bad_engine_args"),
    (["--backend", "vllm", "--model", MODEL, "--max-model-len", "100000"], {}, "bad_engine_args"),
    (ARGS, {"VLLM_DOUBLE_INIT_ERROR": "no CUDA device"}, "startup_failed"),
])
def test_startup_failures(start_engine, args, env, code):
    engine = start_engine(*args, env={**VLLM_ENV, **env}, wait=False)
    failed = _failed(engine)
    assert failed["code"] == code and failed["message"]
    time.sleep(0.2)
    assert os.popen(f"ps -o pid= --ppid {engine.pid}").read().split() == []


@pytest.mark.skipif(REAL_VLLM_HERE, reason="vLLM is installed for this Python")
def test_without_vllm_the_backend_is_unavailable(start_engine):
    engine = start_engine(*ARGS, wait=False)
    assert _failed(engine)["code"] == "backend_unavailable"


def test_auto_picks_vllm_when_it_is_importable(start_engine):
    engine = start_engine("--backend", "auto", "--model", MODEL, env=VLLM_ENV)
    assert engine.ready["backend"] == "vllm" and engine.client().call("hello")["backend"] == "vllm"
    assert "backend auto: chose vllm" in engine.log()


@pytest.mark.skipif(REAL_VLLM_HERE or importlib.util.find_spec("torch") is not None,
                    reason="vLLM or torch is installed for this Python")
def test_auto_falls_back_to_tiny(start_engine):
    engine = start_engine("--backend", "auto", "--model", "tiny-4m")
    assert engine.ready["backend"] == "tiny" and engine.client().call("hello")["backend"] == "tiny"
    assert "vllm_version" not in engine.client().call("hello")
    assert "backend auto: chose tiny" in engine.log()
