"""The canary (prepare_checkpoint answers a fixed greedy request; every resume answers it again and a mismatch
fails the resume) and the pre-dump inventory (what a dump cannot carry refused before anything is drained),
on real engine processes: the tiny engine and the vLLM double."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys

import pytest

from conftest import TINY_ARGS, VLLM_ARGS, VLLM_DOUBLE, VLLM_ENV, wait_for
from engine_host import canary, inventory

HOLDERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "holders")


def _prepare(engine, **args) -> dict:
    reply = engine.client().call("prepare_checkpoint", args)
    assert reply["kind"] == "final" and reply["state"] == "prepared", reply
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    return reply


def _failed(engine) -> dict:
    wait_for(lambda: os.path.exists(engine.path("failed.json")), what="failed.json")
    with open(engine.path("failed.json")) as f:
        return json.load(f)


def _holding(what: str) -> dict:
    path = os.environ.get("PYTHONPATH")
    return {"CRIUCHECKPOINT_TEST_HOLD": what, "PYTHONPATH": HOLDERS if not path else f"{HOLDERS}:{path}"}


# ---------------------------------------------------------------- the canary, tiny engine

def test_prepare_answers_the_canary_and_resume_checks_it(start_engine):
    engine = start_engine(*TINY_ARGS)
    reply = _prepare(engine)
    answer = reply["canary"]
    assert answer["prompt"] == canary.PROMPT and len(answer["token_ids"]) == canary.MAX_TOKENS
    assert len(answer["logprobs"]) == canary.MAX_TOKENS and all(p <= 0 for p in answer["logprobs"])
    assert all(p == round(p, canary.DECIMALS) for p in answer["logprobs"])
    assert reply["canary_s"] > 0
    # The same answer as a client gets for the same greedy request (the tiny tokenizer adds no BOS).
    engine.write_resume(canary=answer)
    ready = engine.wait_ready()
    assert list(ready["phases"]) == ["resume_reacquire", "resume_canary", "resume_bind"]
    generated = engine.client().generate(canary.PROMPT, max_tokens=canary.MAX_TOKENS, ignore_eos=True)
    assert generated["token_ids"] == answer["token_ids"]
    assert "resume: canary matches" in engine.log()


def test_without_a_canary_in_the_message_the_engine_checks_its_own(start_engine):
    engine = start_engine(*TINY_ARGS)
    _prepare(engine)
    engine.write_resume()
    assert "resume_canary" in engine.wait_ready()["phases"]


@pytest.mark.parametrize("change, what", [
    (lambda c: {**c, "token_ids": [c["token_ids"][0], (c["token_ids"][1] + 1) % 256]}, "token ids differ"),
    (lambda c: {**c, "logprobs": [c["logprobs"][0], c["logprobs"][1] - 0.01]}, "logprobs differ by 0.01"),
])
def test_a_canary_that_does_not_match_fails_the_resume(start_engine, change, what):
    engine = start_engine(*TINY_ARGS)
    answer = _prepare(engine)["canary"]
    expected = change(answer)
    engine.write_resume(canary=expected)
    failed = _failed(engine)
    assert failed["code"] == "canary_mismatch" and what in failed["message"]
    assert str(expected["token_ids"]) in failed["message"] or str(expected["logprobs"]) in failed["message"]
    assert engine.wait_exit(30) == 1 and not os.path.exists(engine.path("ready.json"))


def test_a_logprob_within_the_tolerance_matches(start_engine):
    engine = start_engine(*TINY_ARGS)
    answer = _prepare(engine)["canary"]
    engine.write_resume(canary={**answer, "logprobs": [p - canary.TOLERANCE / 2 for p in answer["logprobs"]]})
    engine.wait_ready()
    assert engine.client().call("health")["state"] == "ready"


def test_skip_canary_resumes_without_it_and_prepare_can_leave_it_out(start_engine):
    engine = start_engine(*TINY_ARGS)
    reply = _prepare(engine, canary=False)
    assert reply["canary"] is None and reply["canary_s"] == 0
    engine.write_resume(skip_canary=True, canary={"prompt": "x", "token_ids": [1], "logprobs": [0.0]})
    assert "resume_canary" not in engine.wait_ready()["phases"]


@pytest.mark.parametrize("bad", [
    {"prompt": "", "token_ids": [1], "logprobs": [0.0]},
    {"prompt": "p", "token_ids": [1, 2, 3, 4, 5], "logprobs": [0.0] * 5},
    {"prompt": "p", "token_ids": [1], "logprobs": [float("nan")]},
    {"prompt": "p", "token_ids": [-1], "logprobs": [0.0]},
    {"prompt": "p", "token_ids": [1], "logprobs": [0.0, 0.0]},
    {"prompt": "p", "token_ids": [1], "logprobs": [0.0], "text": "extra"},
])
def test_a_malformed_canary_in_a_resume_message_is_refused(bad):
    with pytest.raises(ValueError, match="canary"):
        canary.parse(bad)


# ---------------------------------------------------------------- the canary and the rehearsal, vLLM double

@pytest.fixture
def double_tokens():
    sys.path.insert(0, VLLM_DOUBLE)
    try:
        from vllm.tokenizers import ByteFallbackTokenizer
        from vllm.v1.engine import core

        prompt = ByteFallbackTokenizer().encode(canary.PROMPT)
        ids, _ = core.reference_generate(prompt, canary.MAX_TOKENS, ignore_eos=True)
        yield ids, [core.token_logprobs(prompt + ids[:i], t, 0)[t].logprob for i, t in enumerate(ids)]
    finally:
        sys.path.remove(VLLM_DOUBLE)
        for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
            del sys.modules[name]


def test_the_vllm_canary_has_vllms_logprobs_and_survives_a_level_2_resume(start_engine, double_tokens):
    engine = start_engine(*VLLM_ARGS, env=VLLM_ENV)
    assert "rehearsal" in engine.ready["phases"]
    assert "sleep level 2 rehearsal: canary unchanged" in engine.log()
    answer = _prepare(engine)["canary"]
    ids, logprobs = double_tokens
    assert answer["token_ids"] == ids
    assert answer["logprobs"] == [round(p, canary.DECIMALS) for p in logprobs]
    engine.write_resume(canary=answer)
    ready = engine.wait_ready()
    assert list(ready["phases"])[-2:] == ["resume_canary", "resume_bind"]
    assert "resume_reload_weights" in ready["phases"]


def test_a_reload_that_changes_the_weights_fails_the_vllm_start(start_engine):
    engine = start_engine(*VLLM_ARGS, env={**VLLM_ENV, "VLLM_DOUBLE_RELOAD_STALE": "1"}, wait=False)
    failed = _failed(engine)
    assert failed["code"] == "startup_failed"
    assert "rehearsal changed the canary" in failed["message"] and "sleep_level 1" in failed["message"]


def test_at_sleep_level_1_the_vllm_engine_does_not_rehearse(start_engine):
    engine = start_engine(*VLLM_ARGS, "--engine-args", '{"sleep_level": 1}',
                          env={**VLLM_ENV, "VLLM_DOUBLE_RELOAD_STALE": "1"})
    assert "rehearsal" not in engine.ready["phases"]


# ---------------------------------------------------------------- the inventory

@pytest.fixture
def outside_listener():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener


@pytest.mark.parametrize("backend", ["tiny", "vllm"])
@pytest.mark.parametrize("hold, named", [
    ("io_uring", "is an io_uring instance"),
    ("tcp", "whose other end is outside the engine's tree"),
    ("shm", "/dev/shm/criucheckpoint-inventory-"),
])
def test_what_a_dump_cannot_carry_is_refused_and_the_engine_serves_on(start_engine, outside_listener,
                                                                      backend, hold, named):
    shm_name = f"criucheckpoint-inventory-{os.getpid()}-{backend}"
    what = {"io_uring": "io_uring", "tcp": "tcp:127.0.0.1:%d" % outside_listener.getsockname()[1],
            "shm": f"shm:{shm_name}"}[hold]
    args = TINY_ARGS if backend == "tiny" else VLLM_ARGS
    env = _holding(what)
    if backend == "vllm":
        env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{VLLM_ENV['PYTHONPATH']}"
    try:
        engine = start_engine(*args, env=env)
        c = engine.client()
        running = c.send("generate", {"prompt": "keep going", "max_tokens": 40, "ignore_eos": True})
        reply = c.call("prepare_checkpoint")
        assert reply["kind"] == "error" and reply["code"] == "checkpoint_unsupported", reply
        assert named in reply["message"] and f"frontend (pid {engine.pid}) fd " in reply["message"]
        assert "serves on" in reply["message"]
        # Refused before the drain: the request in flight ran to its end, and the engine still answers.
        assert c.replies(running)[-1]["finish_reason"] == "length"
        assert c.call("health")["state"] == "ready" and os.path.exists(engine.path("ready.json"))
        assert c.generate("still serving", max_tokens=4, ignore_eos=True)["finish_reason"] == "length"
    finally:
        if os.path.exists(f"/dev/shm/{shm_name}"):
            os.unlink(f"/dev/shm/{shm_name}")


def test_the_prepare_reply_records_the_tree_its_versions_and_environment(start_engine):
    engine = start_engine(*TINY_ARGS, "--workers", "2",
                          env={"TORCH_CANARY_TEST": "x", "CUDA_CANARY_TEST": "y"})
    reply = _prepare(engine)
    found = reply["inventory"]
    assert [(p["pid"], p["role"]) for p in found["processes"]] == [
        (p["pid"], p["role"]) for p in engine.ready["pids"]]
    assert all(p["gpu_uuids"] == [] for p in found["processes"])
    assert found["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert found["versions"] == inventory.runtime_versions(("numpy",))
    environment = {**os.environ, "TORCH_CANARY_TEST": "x", "CUDA_CANARY_TEST": "y"}
    assert found["environment"] == inventory.environment_identity(environment)
    assert {"TORCH_CANARY_TEST", "CUDA_CANARY_TEST"} <= set(found["environment"]["names"])
    engine.write_resume()
    engine.wait_ready()


def test_tcp_between_processes_of_the_tree_and_the_links_own_are_let_through():
    me = [{"pid": os.getpid(), "role": "frontend"}]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        inside = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with inside, accepted:
            assert inventory.take(me, None, {}).problems == []
        # Never accepted: its other end is no process's.
        outside = socket.create_connection(listener.getsockname())
        with outside:
            problems = inventory.take(me, None, {}).problems
            assert len(problems) == 1 and "TCP connection from 127.0.0.1:" in problems[0]
            assert inventory.take(me, outside.getsockname()[1], {}).problems == []


def test_a_unix_socket_to_a_process_outside_the_tree_is_refused(tmp_path):
    if inventory.unix_peers() is None:
        pytest.skip("this kernel does not answer sock_diag for unix sockets")
    me = [{"pid": os.getpid(), "role": "frontend"}]
    left, right = socket.socketpair()
    with left, right:
        assert inventory.take(me, None, {}).problems == []
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        pid = os.fork()
        if pid == 0:  # the peer: a process outside the "tree" of this test process alone
            peer, _ = server.accept()
            peer.recv(1)
            os._exit(0)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            problems = inventory.take(me, None, {}).problems
            client.send(b"x")
        os.waitpid(pid, 0)
    assert any("unix socket connected to a process outside" in p for p in problems), problems


def test_an_unlinked_shm_file_within_the_ghost_limit_goes_into_the_image(tmp_path):
    """multiprocessing's semaphores are /dev/shm files unlinked at once: CRIU carries those as ghost files."""
    (tmp_path / "7" / "fd").mkdir(parents=True)
    (tmp_path / "7" / "maps").write_text(
        "7f0000000000-7f0000001000 rw-s 00000000 00:1a 11 /dev/shm/sem.small (deleted)\n"
        "7f0000100000-7f0000300000 rw-s 00000000 00:1a 12 /dev/shm/big (deleted)\n"
        "7f0000400000-7f0000401000 rw-s 00000000 00:1a 13 /dev/shm/linked\n")

    problems = inventory.take([{"pid": 7, "role": "core-0"}], None, {}, proc=str(tmp_path)).problems

    assert len(problems) == 2
    assert "/dev/shm/big (deleted)" in problems[0] and "ghost limit of 1 MiB" in problems[0]
    assert "/dev/shm/linked" in problems[1] and "reopened by path" in problems[1]


def test_gpus_are_named_by_the_drivers_proc_files(tmp_path):
    proc = tmp_path / "proc"
    (proc / "41" / "fd").mkdir(parents=True)
    (proc / "41" / "fd" / "3").symlink_to("/dev/nvidiactl")
    (proc / "41" / "fd" / "4").symlink_to("/dev/nvidia1")
    (proc / "41" / "fd" / "5").symlink_to("/dev/nvidia7")
    gpu = proc / "driver" / "nvidia" / "gpus" / "0000:3b:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t NVIDIA H200\nGPU UUID: \t GPU-0123\nDevice Minor: \t 1\n")
    found = inventory.take([{"pid": 41, "role": "core-0"}], None, {}, proc=str(proc))
    assert found.processes == [{"pid": 41, "role": "core-0", "gpu_uuids": ["GPU-0123", "minor 7"]}]
    assert found.problems == []


def test_the_environment_hash_covers_the_five_prefixes_only():
    base = inventory.environment_identity({"VLLM_A": "1", "CUDA_VISIBLE_DEVICES": "0", "HOME": "/root"})
    assert base["names"] == ["CUDA_VISIBLE_DEVICES", "VLLM_A"]
    assert inventory.environment_identity({"VLLM_A": "1", "CUDA_VISIBLE_DEVICES": "0"}) == base
    changed = inventory.environment_identity({"VLLM_A": "2", "CUDA_VISIBLE_DEVICES": "0"})
    assert changed["sha256"] != base["sha256"]
    assert base["sha256"] == hashlib.sha256(b"CUDA_VISIBLE_DEVICES=0\nVLLM_A=1\n").hexdigest()
