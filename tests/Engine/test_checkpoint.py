"""prepare_checkpoint → (CRIU would dump here) → resume through the FIFO, without CRIU."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import threading
import time

import pytest
import zmq

from conftest import TINY_ARGS, pid_alive, wait_for
from engine_host import resume

PROMPTS = ["Hello", "The quick brown fox", "Once upon a time"]


def _greedy(client):
    return [client.generate(p, max_tokens=25, ignore_eos=True)["text"] for p in PROMPTS]


def _sockets(pid: int) -> list:
    fd_dir = f"/proc/{pid}/fd"
    links = []
    for fd in os.listdir(fd_dir):
        try:
            links.append(os.readlink(os.path.join(fd_dir, fd)))
        except FileNotFoundError:
            pass
    return [link for link in links if link.startswith("socket:")]


def _tcp_inodes() -> set:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            with open(table) as f:
                inodes.update(line.split()[9] for line in list(f)[1:])
    return inodes


def _threads(pid: int) -> list:
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names


def _prepare(client, **args) -> dict:
    return client.call("prepare_checkpoint", args)


def _wait_prepared(engine):
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="ready.json removed")
    # The link is closed and the zmq context terminated (libzmq names its threads ZMQbg/...):
    # only the main and the scheduler threads remain.
    wait_for(lambda: len(_threads(engine.pid)) == 2, what="zmq threads gone")
    assert not [t for t in _threads(engine.pid) if t.startswith("ZMQ")]


def _resume(engine, host="127.0.0.1", port=0) -> dict:
    engine.write_resume(host=host, port=port)
    wait_for(lambda: os.path.exists(engine.path("ready.json")), what="ready.json after resume")
    return engine.wait_ready()


def test_prepare_then_resume_serves_identical_greedy_output(start_engine):
    engine = start_engine(*TINY_ARGS, "--workers", "2")
    pids = [p["pid"] for p in engine.ready["pids"]]
    first_endpoint = engine.ready["endpoint"]
    c = engine.client()
    before = _greedy(c)

    reply = _prepare(c)
    assert reply["kind"] == "final" and reply["state"] == "prepared" and reply["aborted"] == 0
    assert reply["resume_fifo"] == engine.path("resume.fifo")
    assert stat.S_ISFIFO(os.stat(reply["resume_fifo"]).st_mode)
    assert stat.S_IMODE(os.stat(reply["resume_fifo"]).st_mode) == 0o600
    _wait_prepared(engine)

    # No socket at all in the process tree (cores talk over pipes), so certainly no TCP socket.
    tcp = _tcp_inodes()
    for pid in pids:
        sockets = _sockets(pid)
        assert sockets == [], (pid, sockets)
        assert not {s[len("socket:["):-1] for s in sockets} & tcp
    assert all(pid_alive(p) for p in pids)

    ready = _resume(engine)
    assert list(ready["phases"]) and all(k.startswith("resume_") for k in ready["phases"])
    assert [p["pid"] for p in ready["pids"]] == pids
    c2 = engine.client()
    health = c2.call("health")
    assert health["state"] == "ready" and health["in_flight"] == 0
    assert _greedy(c2) == before
    if ready["endpoint"] == first_endpoint:  # the same ephemeral port may come back; usually not
        return
    assert c2.call("hello")["pids"] == engine.ready["pids"]


def _hand_over(engine, handed: socket.socket, host="127.0.0.1", port=0) -> None:
    """What the module does at resume: listen at the run dir's handover socket, name it, send `handed` by
    SCM_RIGHTS."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(engine.path("handover.sock"))
        server.listen(1)
        server.settimeout(20)
        engine.write_resume(host=host, port=port, handover="handover.sock")
        peer, _ = server.accept()
        with peer:
            socket.send_fds(peer, [b"\x01"], [handed.fileno()])
    os.unlink(engine.path("handover.sock"))


def test_resume_serves_on_a_listener_handed_over(start_engine):
    engine = start_engine(*TINY_ARGS)
    before = _greedy(engine.client())
    assert _prepare(engine.client())["state"] == "prepared"
    _wait_prepared(engine)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        _hand_over(engine, listener, port=port)
    # Our copy is closed: the engine's copy alone listens now.
    ready = engine.wait_ready()
    assert ready["endpoint"] == f"tcp://127.0.0.1:{port}"
    assert "resume_handover" in ready["phases"]
    assert _greedy(engine.client()) == before


def test_resume_refuses_a_handed_over_socket_that_does_not_listen(start_engine):
    engine = start_engine(*TINY_ARGS)
    assert _prepare(engine.client())["state"] == "prepared"
    _wait_prepared(engine)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
        _hand_over(engine, datagram)
    assert engine.wait_exit(30) == 1
    with open(engine.path("failed.json")) as f:
        failed = json.load(f)
    assert failed["code"] == "resume_failed" and "not a listening TCP socket" in failed["message"]


@pytest.mark.parametrize("handover", ["../x.sock", "a/b", "", ".", 5])
def test_resume_message_handover_must_be_a_file_name(handover):
    line = json.dumps({"host": "127.0.0.1", "port": 0, "handover": handover}).encode()
    with pytest.raises(ValueError, match="handover"):
        resume.parse_resume(line)


def test_receive_listener_gives_up_when_nothing_is_sent(tmp_path):
    path = str(tmp_path / "handover.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
        thread.start()
        with pytest.raises(TimeoutError):
            resume.receive_listener(path, timeout_s=0.2)
        thread.join()
        accepted[0].close()


def test_prepare_keeping_caches_releases_nothing_and_resumes_without_reacquiring(start_engine):
    engine = start_engine(*TINY_ARGS, "--workers", "2")
    c = engine.client()
    before = _greedy(c)
    reply = _prepare(c, keep_caches=True)
    assert reply["state"] == "prepared"
    _wait_prepared(engine)
    ready = _resume(engine)
    assert "resume_reacquire" not in ready["phases"] and "resume_bind" in ready["phases"]
    assert _greedy(engine.client()) == before


def test_prepare_drains_in_flight_requests_and_refuses_new_work(start_engine):
    engine = start_engine(*TINY_ARGS)
    c = engine.client()
    running = c.send("generate", {"prompt": "finish me", "max_tokens": 300, "ignore_eos": True})
    prepare = c.send("prepare_checkpoint", {"drain_timeout_s": 30})
    late = c.send("generate", {"prompt": "too late"})
    assert c.replies(late)[-1]["code"] == "not_ready"
    assert c.replies(running)[-1]["finish_reason"] == "length"
    reply = c.replies(prepare)[-1]
    assert reply["state"] == "prepared" and reply["aborted"] == 0
    _wait_prepared(engine)
    _resume(engine)
    assert engine.client().generate("back", max_tokens=3)["kind"] == "final"


def test_prepare_can_abort_in_flight_requests(start_engine):
    engine = start_engine(*TINY_ARGS)
    c = engine.client()
    running = c.send("generate", {"prompt": "abort me", "max_tokens": 4000, "ignore_eos": True})
    reply = _prepare(c, abort_in_flight=True)
    assert reply["state"] == "prepared" and reply["aborted"] == 1
    assert c.replies(running)[-1]["finish_reason"] == "abort"


def test_drain_timeout_aborts_what_is_left(start_engine):
    engine = start_engine(*TINY_ARGS)
    c = engine.client()
    running = c.send("generate", {"prompt": "too slow", "max_tokens": 4000, "ignore_eos": True})
    started = time.monotonic()
    reply = _prepare(c, drain_timeout_s=0.3)
    assert reply["state"] == "prepared" and reply["aborted"] == 1
    assert time.monotonic() - started >= 0.3
    assert c.replies(running)[-1]["finish_reason"] == "abort"


def test_second_prepare_while_draining_is_refused(start_engine):
    engine = start_engine(*TINY_ARGS)
    c = engine.client()
    running = c.send("generate", {"prompt": "slow", "max_tokens": 600, "ignore_eos": True})
    first = c.send("prepare_checkpoint", {})
    second = c.send("prepare_checkpoint", {})
    assert c.replies(second)[-1]["code"] == "not_ready"
    assert c.replies(running)[-1]["finish_reason"] == "length"
    assert c.replies(first)[-1]["state"] == "prepared"


def test_bad_resume_messages_are_skipped_and_never_logged(start_engine):
    engine = start_engine(*TINY_ARGS)
    assert _prepare(engine.client())["state"] == "prepared"
    _wait_prepared(engine)
    _, secret = zmq.curve_keypair()
    junk = ["not json\n", "\n", json.dumps({"port": "x", "curve_secret_key": secret.decode()}) + "\n",
            json.dumps({"port": 0}) + "\n", json.dumps({"curve_secret_key": "too short"}) + "\n",
            json.dumps({"curve_secret_key": "~" * 40}) + "\n"]
    for line in junk:
        with open(engine.path("resume.fifo"), "w") as fifo:
            fifo.write(line)
        time.sleep(0.1)
        assert not os.path.exists(engine.path("ready.json"))
    ready = _resume(engine)
    assert engine.client().call("health")["state"] == "ready"
    assert ready["endpoint"].startswith("tcp://127.0.0.1:")
    log = engine.log()
    assert log.count("ignoring a bad resume message") == 5
    assert "curve_secret_key is required" in log and secret.decode() not in log


def test_resume_reopens_the_fifo_by_path(start_engine):
    """After a restore the run dir is another directory bind-mounted over the old one: the FIFO at
    the path is a different FIFO. The engine never keeps the FIFO open across a wait."""
    engine = start_engine(*TINY_ARGS)
    assert _prepare(engine.client())["state"] == "prepared"
    _wait_prepared(engine)
    fifo = engine.path("resume.fifo")
    with open(fifo, "w"):  # the engine's open() of the old FIFO completes...
        os.unlink(fifo)
        os.mkfifo(fifo, 0o600)
    # ... reads nothing, and waits again on whatever FIFO is at the path now.
    _resume(engine)
    assert engine.client().generate("x", max_tokens=2)["kind"] == "final"


def test_resume_that_cannot_bind_writes_failed_json(start_engine):
    engine = start_engine(*TINY_ARGS)
    pids = [p["pid"] for p in engine.ready["pids"]]
    assert _prepare(engine.client())["state"] == "prepared"
    _wait_prepared(engine)
    engine.write_resume(host="192.0.2.1", port=0)  # not an address of ours
    assert engine.wait_exit(30) == 1
    with open(engine.path("failed.json")) as f:
        assert json.load(f)["code"] == "resume_failed"
    assert not os.path.exists(engine.path("ready.json"))
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="cores to exit")


def test_sigterm_while_prepared_exits_0(start_engine):
    engine = start_engine(*TINY_ARGS)
    pids = [p["pid"] for p in engine.ready["pids"]]
    assert _prepare(engine.client())["state"] == "prepared"
    _wait_prepared(engine)
    os.kill(engine.pid, signal.SIGTERM)
    assert engine.wait_exit(30) == 0
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="cores to exit")
