"""The link lets in only the client key in the engine's run directory (docs/protocol.md, "Security").

A client without it gets no connection: what it sends is never read, so it waits in vain, and the engine
serves its owner as before.
"""
from __future__ import annotations

import json
import os
import stat

import pytest
import zmq

from conftest import TINY_ARGS, resume_message, wait_for
from engine_host import curve, resume

UNANSWERED_S = 1.5
# What an intruder would ask: all four must go unanswered, and the engine serve on.
ATTEMPTS = [("hello", {}), ("generate", {"prompt": "let me in", "max_tokens": 4}),
            ("prepare_checkpoint", {}), ("shutdown", {})]


def _random_keys(server_public: bytes) -> tuple:
    return (server_public, *zmq.curve_keypair())


def _answers(engine, keys) -> list:
    """Every reply the attempts get within UNANSWERED_S (a send a refused connection cannot take: none)."""
    intruder = engine.client_with(keys, send_timeout=UNANSWERED_S)
    replies = []
    try:
        for op, args in ATTEMPTS:
            intruder.send(op, args)
        while True:
            replies.append(intruder.recv_any(UNANSWERED_S))
    except TimeoutError:
        return replies
    finally:
        intruder.close()


def _serves(engine) -> bool:
    client = engine.client()
    try:
        return client.call("health", timeout=10)["state"] == "ready"
    finally:
        client.close()


@pytest.fixture(scope="module")
def engine(shared_engine):
    yield shared_engine
    assert _serves(shared_engine)


def test_key_files_are_the_owners_alone(engine):
    for name in (curve.SERVER_PUBLIC, curve.CLIENT_PUBLIC, curve.CLIENT_SECRET):
        mode = os.stat(engine.path(name)).st_mode
        assert stat.S_IMODE(mode) == 0o600, name
    server_public, client_public, client_secret = engine.link_keys()
    assert zmq.curve_public(client_secret) == client_public
    assert all(len(key) == 40 for key in (server_public, client_public, client_secret))


def test_the_owners_keys_are_answered(engine):
    assert engine.client().call("hello")["backend"] == "tiny"


def test_a_client_without_curve_is_never_answered(engine):
    assert _answers(engine, None) == []
    assert _serves(engine)


def test_a_client_key_the_engine_did_not_issue_is_never_answered(engine):
    server_public, _, _ = engine.link_keys()
    assert _answers(engine, _random_keys(server_public)) == []
    assert _serves(engine)


def test_the_owners_client_key_with_another_server_key_is_never_answered(engine):
    _, client_public, client_secret = engine.link_keys()
    wrong_server, _ = zmq.curve_keypair()
    assert _answers(engine, (wrong_server, client_public, client_secret)) == []
    assert _serves(engine)


def test_refusals_are_logged_without_flooding_the_log(start_engine):
    engine = start_engine(*TINY_ARGS)
    server_public, _, _ = engine.link_keys()
    intruder = engine.client_with(_random_keys(server_public), send_timeout=UNANSWERED_S)
    intruder.send("hello")
    wait_for(lambda: "refused" in engine.log(), what="a refusal in the log")
    with pytest.raises(TimeoutError):
        intruder.recv_any(UNANSWERED_S)  # it reconnects and is refused over and over meanwhile
    refusals = [line for line in engine.log().splitlines() if "refused" in line]
    assert len(refusals) == 1 and "client key this engine does not accept" in refusals[0]


def test_a_resumed_engine_answers_only_the_keys_of_its_resume(start_engine):
    engine = start_engine(*TINY_ARGS)
    before = engine.link_keys()
    assert engine.client().call("prepare_checkpoint")["state"] == "prepared"
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    engine.write_resume(port=0)
    engine.wait_ready()
    after = engine.link_keys()

    assert after[0] != before[0] and after[1] != before[1]
    assert engine.client_with(after).call("health")["state"] == "ready"
    assert _answers(engine, before) == []
    assert _answers(engine, (before[0], after[1], after[2])) == []
    assert _answers(engine, (after[0], before[1], before[2])) == []
    assert _serves(engine)


def test_the_server_secret_key_of_a_resume_is_not_written_anywhere(start_engine):
    engine = start_engine(*TINY_ARGS)
    assert engine.client().call("prepare_checkpoint")["state"] == "prepared"
    wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    line = resume_message(engine.run_dir, port=0)
    with open(engine.path("resume.fifo"), "w") as fifo:
        fifo.write(line)
    engine.wait_ready()
    secret = json.loads(line)["curve_secret_key"].encode()
    for name in os.listdir(engine.run_dir):
        path = engine.path(name)
        if stat.S_ISREG(os.stat(path).st_mode):
            with open(path, "rb") as f:
                assert secret not in f.read(), name
    assert engine.link_keys()[0] == zmq.curve_public(secret)


@pytest.mark.parametrize("secret", [None, "", "x" * 39, "~" * 40, "#" * 40, 7])
def test_a_resume_message_needs_a_server_secret_key(secret):
    fields = {"port": 0} if secret is None else {"port": 0, "curve_secret_key": secret}
    with pytest.raises(ValueError, match="curve_secret_key"):
        resume.parse_resume(json.dumps(fields).encode())


def test_an_engine_whose_libzmq_lacks_curve_refuses_to_start(start_engine, tmp_path):
    shim = tmp_path / "no-curve"
    shim.mkdir()
    # Imported at interpreter start: the engine then sees a libzmq without CURVE.
    (shim / "sitecustomize.py").write_text(
        "import zmq\n_has = zmq.has\nzmq.has = lambda feature: feature != 'curve' and _has(feature)\n")
    engine = start_engine(*TINY_ARGS, wait=False, env={"PYTHONPATH": str(shim)})
    assert engine.wait_exit() == 1
    with open(engine.path("failed.json")) as f:
        failed = json.load(f)
    assert failed["code"] == "curve_unavailable" and "CURVE" in failed["message"]
    assert not os.path.exists(engine.path(curve.CLIENT_SECRET))
