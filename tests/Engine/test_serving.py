"""A running tiny engine over a real DEALER: hello, health, generation, batching, abort, errors."""
from __future__ import annotations

import os
import time

import msgpack
import pytest

from engine_host.protocol import PROTOCOL_VERSION

PROMPTS = ["Hello", "The quick brown fox", "abc", "Once upon a time", "zzz", "0123456789",
           "CRIU checkpoints", "Ünïcödé prompt ✓"]


def test_hello_describes_the_engine(client, shared_engine):
    h = client.call("hello")
    assert h["kind"] == "final" and h["v"] == PROTOCOL_VERSION
    assert h["protocol"] == PROTOCOL_VERSION and h["backend"] == "tiny" and h["model"] == "tiny-4m"
    assert h["device"] == "cpu" and h["dtype"] == "float32" and h["workers"] == 1
    assert h["capabilities"] == ["generate", "stream", "abort", "batch", "checkpoint"]
    assert h["max_model_len"] == 4096 and h["vocab_size"] == 257 and h["eos_token_id"] == 256
    assert h["tokenizer"] == "byte" and h["state"] == "ready"
    assert h["host_memory_bytes"] > 3_000_000 and h["gpu_memory_bytes"] == 0
    assert len(h["config_hash"]) == 16
    assert [p["role"] for p in h["pids"]] == ["frontend", "core-0"]
    assert h["pids"][0]["pid"] == shared_engine.pid
    assert h["pids"] == shared_engine.ready["pids"]


def test_ready_json_reports_endpoint_pids_and_phases(shared_engine):
    r = shared_engine.ready
    assert r["endpoint"].startswith("tcp://127.0.0.1:") and not r["endpoint"].endswith(":0")
    assert list(r["phases"]) == ["import", "plan", "spawn_cores", "import_backend", "weights",
                                 "warmup", "bind"]
    assert all(isinstance(s, float) and s >= 0 for s in r["phases"].values())
    assert r["backend"] == "tiny" and r["model"] == "tiny-4m"


def test_health(client):
    h = client.call("health")
    assert h["state"] == "ready" and h["in_flight"] == 0
    assert h["uptime_s"] > 0 and isinstance(h["steps"], int)


def test_generate_result_fields(client):
    r = client.generate("Hello", max_tokens=12, ignore_eos=True)
    assert r["kind"] == "final" and r["finish_reason"] == "length"
    assert r["prompt_tokens"] == 5 and r["completion_tokens"] == 12 == len(r["token_ids"])
    assert r["text"] == bytes(r["token_ids"]).decode("utf-8", errors="replace")
    assert 0 < r["ttft_s"] <= r["duration_s"]


def test_greedy_is_deterministic_alone_and_in_a_batch_of_8(client):
    alone = [client.generate(p, max_tokens=24, ignore_eos=True)["token_ids"] for p in PROMPTS]
    assert len({tuple(t) for t in alone}) > 1, "prompts should lead to different completions"
    ids = [client.send("generate", {"prompt": p, "max_tokens": 24, "ignore_eos": True})
           for p in PROMPTS]
    batched = [client.replies(i)[-1]["token_ids"] for i in ids]
    assert batched == alone
    again = [client.generate(p, max_tokens=24, ignore_eos=True)["token_ids"] for p in PROMPTS]
    assert again == alone


def test_requests_in_flight_are_batched(client):
    before = client.call("health")["steps"]
    # Long enough that the requests overlap for most of their decoding even when the first ones start
    # decoding before the last ones arrive.
    ids = [client.send("generate", {"prompt": p, "max_tokens": 40, "ignore_eos": True})
           for p in PROMPTS]
    finals = [client.replies(i)[-1] for i in ids]
    steps = client.call("health")["steps"] - before
    total_tokens = sum(f["completion_tokens"] for f in finals)
    assert total_tokens == 320
    assert steps < total_tokens / 2, (steps, total_tokens)


def test_stream_chunks_concatenate_to_the_final_text(client):
    replies = client.replies(client.send("generate", {"prompt": "Stream me", "max_tokens": 40,
                                                      "stream": True, "ignore_eos": True}))
    chunks, final = replies[:-1], replies[-1]
    assert final["kind"] == "final" and len(chunks) >= 2
    assert all(c["kind"] == "chunk" for c in chunks)
    assert "".join(c["text"] for c in chunks) == final["text"]
    assert [t for c in chunks for t in c["token_ids"]] == final["token_ids"]
    plain = client.generate("Stream me", max_tokens=40, ignore_eos=True)
    assert plain["text"] == final["text"]


def test_stream_never_splits_a_multibyte_character(client):
    # Sampling at a high temperature emits non-ASCII bytes too.
    replies = client.replies(client.send("generate", {
        "prompt": "x", "max_tokens": 200, "stream": True, "temperature": 5.0, "seed": 3,
        "ignore_eos": True}))
    final = replies[-1]
    raw = bytes(t for t in final["token_ids"] if t != 256)  # EOS (ignored) adds no text
    assert any(b >= 0x80 for b in raw)
    assert final["text"] == raw.decode("utf-8", errors="replace")
    assert "".join(c["text"] for c in replies[:-1]) == final["text"]


def test_seeded_sampling_is_reproducible(client):
    args = {"max_tokens": 30, "temperature": 1.0, "top_p": 0.9, "ignore_eos": True}
    a = client.generate("Seeded", seed=7, **args)["token_ids"]
    b = client.generate("Seeded", seed=7, **args)["token_ids"]
    c = client.generate("Seeded", seed=8, **args)["token_ids"]
    assert a == b and a != c
    # ... also when other requests share its batches.
    ids = [client.send("generate", {"prompt": p, **args, "seed": 1}) for p in PROMPTS[:4]]
    again = client.generate("Seeded", seed=7, **args)["token_ids"]
    for i in ids:
        client.replies(i)
    assert again == a


@pytest.mark.parametrize("args, code", [
    ({}, "bad_request"),
    ({"prompt": 42}, "bad_request"),
    ({"prompt": "x", "max_tokens": -1}, "bad_request"),
    ({"prompt": "x", "max_tokens": "10"}, "bad_request"),
    ({"prompt": "x", "temperature": -1}, "bad_request"),
    ({"prompt": "x", "stop": "."}, "bad_request"),
    ({"prompt": "x", "max_tokens": 4096}, "prompt_too_long"),
    ({"prompt": "y" * 4000, "max_tokens": 100}, "prompt_too_long"),
])
def test_bad_generate_requests_get_errors_and_the_engine_serves_on(client, args, code):
    r = client.call("generate", args)
    assert r["kind"] == "error" and r["code"] == code and r["message"]
    assert client.generate("still alive", max_tokens=3)["kind"] == "final"


def test_bad_envelopes_get_errors(client):
    assert client.call("teleport")["code"] == "unknown_op"
    assert client.call("health", v=PROTOCOL_VERSION - 1)["code"] == "unsupported_version"
    client.send_raw(b"\xc1 not msgpack")
    r = client.recv_any()
    assert r["kind"] == "error" and r["code"] == "bad_request" and r["id"] is None
    client.send_raw(msgpack.packb({"v": PROTOCOL_VERSION, "op": "health"}))
    assert client.recv_any()["code"] == "bad_request"
    client.socket.send_multipart([b"", b"a", b"b"])
    assert client.recv_any()["code"] == "bad_request"
    assert client.call("health")["state"] == "ready"


def test_health_answers_while_a_long_generation_runs(client, shared_engine):
    rid = client.send("generate", {"prompt": "busy", "max_tokens": 3000, "ignore_eos": True})
    other = shared_engine.client()
    time.sleep(0.05)
    h = other.call("health", timeout=2.0)
    assert h["in_flight"] == 1
    client.call("abort", {"request_id": rid})
    client.replies(rid)


def test_the_frontend_runs_no_model_code(shared_engine):
    with open(f"/proc/{shared_engine.pid}/maps") as f:
        assert "numpy" not in f.read()


def test_cores_get_no_stdin(shared_engine):
    for p in shared_engine.ready["pids"]:
        assert os.readlink(f"/proc/{p['pid']}/fd/0") == "/dev/null"
