"""What every backend's compute loop must do the same way with requests (scheduler.RequestLoop): stop
strings, abort, connections that only reach their own requests, duplicate request ids. Run against the tiny
engine and against the vllm backend on the vLLM test double."""
from __future__ import annotations

import pytest

from conftest import TINY_ARGS, VLLM_ARGS, VLLM_ENV, serving_engine


@pytest.fixture(scope="module", params=["tiny", "vllm"])
def engine(request, tmp_path_factory, zmq_context):
    args, env = (TINY_ARGS, None) if request.param == "tiny" else (VLLM_ARGS, VLLM_ENV)
    with serving_engine(tmp_path_factory, request.param, args, zmq_context, env) as engine:
        yield engine


@pytest.fixture
def client(engine):
    c = engine.client()
    yield c
    c.close()


def test_stop_strings_end_generation_and_are_held_back_from_the_stream(client):
    full = client.generate("Once upon a time", max_tokens=40, ignore_eos=True)["text"]
    stop = full[8:11]
    expected = full[:full.find(stop)]
    r = client.generate("Once upon a time", max_tokens=40, ignore_eos=True, stop=["\x00never", stop])
    assert r["finish_reason"] == "stop" and r["text"] == expected
    streamed = client.replies(client.send("generate", {
        "prompt": "Once upon a time", "max_tokens": 40, "ignore_eos": True, "stop": [stop],
        "stream": True}))
    assert "".join(c["text"] for c in streamed[:-1]) == expected == streamed[-1]["text"]
    assert [t for c in streamed[:-1] for t in c["token_ids"]] == streamed[-1]["token_ids"]


def test_abort_ends_the_request_and_is_idempotent(client):
    rid = client.send("generate", {"prompt": "long", "max_tokens": 4000, "stream": True,
                                   "ignore_eos": True})
    first = client.recv_any()
    assert first["id"] == rid and first["kind"] == "chunk"
    abort = client.call("abort", {"request_id": rid})
    assert abort["kind"] == "final" and abort["aborted"] is True
    replies = client.replies(rid)
    final = replies[-1]
    assert final["kind"] == "final" and final["finish_reason"] == "abort"
    assert 0 < final["completion_tokens"] < 4000
    streamed = [t for r in [first] + replies[:-1] for t in r.get("token_ids", [])]
    assert final["token_ids"][:len(streamed)] == streamed
    assert client.call("abort", {"request_id": rid})["aborted"] is False
    assert client.call("abort", {"request_id": "never-sent"})["aborted"] is False
    assert client.call("health")["in_flight"] == 0


def test_abort_only_reaches_requests_of_the_same_connection(client, engine):
    other = engine.client()
    rid = client.send("generate", {"prompt": "mine", "max_tokens": 30, "ignore_eos": True})
    assert other.call("abort", {"request_id": rid})["aborted"] is False
    assert client.replies(rid)[-1]["finish_reason"] == "length"


def test_duplicate_request_id_in_flight_is_refused(client):
    rid = client.send("generate", {"prompt": "dup", "max_tokens": 3000, "ignore_eos": True})
    client.send("generate", {"prompt": "dup"}, request_id=rid)
    replies = []
    while not any(r["kind"] == "error" for r in replies):
        replies.append(client.recv_any())
    assert replies[-1]["code"] == "bad_request"
    client.call("abort", {"request_id": rid})
    assert client.replies(rid)[-1]["finish_reason"] == "abort"
