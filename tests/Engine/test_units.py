"""Unit tests of the pieces that need no engine process: envelope validation, text streaming, sampling."""
from __future__ import annotations

import random

import msgpack
import numpy as np
import pytest

from engine_host import protocol
from engine_host.protocol import PROTOCOL_VERSION as V
from engine_host.protocol import ErrorCode, ProtocolError, parse_request
from engine_host.sampling import Sampler, SamplingParams
from engine_host.textstream import TextStream
from engine_host.tokenizer import ByteDetokenizer, ByteTokenizer


def _pack(**envelope) -> bytes:
    return msgpack.packb(envelope)


def _error(payload: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_request(payload)
    return info.value


def test_valid_generate_gets_defaults():
    r = parse_request(_pack(v=V, id="a", op="generate", args={"prompt": "hi"}))
    assert r.id == "a" and r.op == "generate"
    assert r.args == protocol.GenerateArgs(prompt="hi")


def test_args_may_be_omitted_for_ops_without_arguments():
    assert parse_request(_pack(v=V, id="a", op="health")).op == "health"


@pytest.mark.parametrize("payload, code, rid", [
    (b"\xc1garbage", ErrorCode.BAD_REQUEST, None),
    (msgpack.packb([1, 2]), ErrorCode.BAD_REQUEST, None),
    (_pack(v=V, op="health"), ErrorCode.BAD_REQUEST, None),
    (_pack(v=V, id=7, op="health"), ErrorCode.BAD_REQUEST, None),
    (_pack(id="a", op="health"), ErrorCode.BAD_REQUEST, "a"),
    (_pack(v=str(V), id="a", op="health"), ErrorCode.BAD_REQUEST, "a"),
    (_pack(v=V - 1, id="a", op="health"), ErrorCode.UNSUPPORTED_VERSION, "a"),
    (_pack(v=V, id="a", op="fly"), ErrorCode.UNKNOWN_OP, "a"),
    (_pack(v=V, id="a", op="health", args=[1]), ErrorCode.BAD_REQUEST, "a"),
    (_pack(v=V, id="a", op="health", args={"x": 1}), ErrorCode.BAD_REQUEST, "a"),
])
def test_bad_envelopes(payload, code, rid):
    err = _error(payload)
    assert (err.code, err.request_id) == (code, rid)


@pytest.mark.parametrize("args", [
    {},
    {"prompt": 5},
    {"prompt": ""},
    {"prompt": "x", "max_tokens": 0},
    {"prompt": "x", "max_tokens": -3},
    {"prompt": "x", "max_tokens": 2.0},
    {"prompt": "x", "max_tokens": True},
    {"prompt": "x", "temperature": -0.1},
    {"prompt": "x", "temperature": "hot"},
    {"prompt": "x", "top_p": 0},
    {"prompt": "x", "top_p": 1.5},
    {"prompt": "x", "seed": -1},
    {"prompt": "x", "seed": 1.5},
    {"prompt": "x", "stop": "a"},
    {"prompt": "x", "stop": [""]},
    {"prompt": "x", "stream": 1},
    {"prompt": "x", "max_token": 3},
])
def test_bad_generate_args(args):
    assert _error(_pack(v=V, id="g", op="generate", args=args)).code == ErrorCode.BAD_REQUEST


def test_numbers_may_be_ints_or_floats():
    r = parse_request(_pack(v=V, id="g", op="generate",
                            args={"prompt": "x", "temperature": 1, "top_p": 1, "seed": None}))
    assert r.args.temperature == 1.0 and isinstance(r.args.temperature, float)


def test_prepare_checkpoint_args():
    r = parse_request(_pack(v=V, id="p", op="prepare_checkpoint", args={"drain_timeout_s": 2}))
    assert r.args == protocol.PrepareCheckpointArgs(2.0, False, False)
    r = parse_request(_pack(v=V, id="p", op="prepare_checkpoint", args={"keep_caches": True}))
    assert r.args == protocol.PrepareCheckpointArgs(30.0, False, True)
    assert _error(_pack(v=V, id="p", op="prepare_checkpoint",
                        args={"keep_caches": 1})).code == ErrorCode.BAD_REQUEST
    assert _error(_pack(v=V, id="p", op="prepare_checkpoint",
                        args={"abort_in_flight": "yes"})).code == ErrorCode.BAD_REQUEST


def test_replies_carry_version_id_and_kind():
    reply = msgpack.unpackb(protocol.encode_error("r", ErrorCode.NOT_READY, "busy"))
    assert reply == {"v": V, "id": "r", "kind": "error", "code": "not_ready", "message": "busy"}


def test_byte_detokenizer_matches_a_whole_decode():
    rng = random.Random(1)
    for _ in range(200):
        data = bytes(rng.choice([rng.randrange(256), rng.randrange(0x80, 0x100)])
                     for _ in range(rng.randrange(1, 40)))
        d = ByteDetokenizer(256)
        pieces = [d.add(b) for b in data] + [d.flush()]
        assert "".join(pieces) == data.decode("utf-8", errors="replace")


def test_multibyte_characters_are_never_split():
    tokenizer = ByteTokenizer(257, 256)
    stream = TextStream(tokenizer.detokenizer(), ())
    streamed = []
    for token in "añ€😀".encode("utf-8"):
        stream.add(token)
        streamed.append(stream.take_stream_text(final=False))
    assert streamed == ["a", "", "ñ", "", "", "€", "", "", "", "😀"]


def test_stop_string_is_excluded_and_never_streamed():
    stream = TextStream(ByteTokenizer(257, 256).detokenizer(), ("END", "xyz"))
    streamed, stopped = "", False
    for token in b"hello ENthe END tail":
        stopped = stream.add(token)
        streamed += stream.take_stream_text(final=False)
        if stopped:
            break
    stream.finish()
    streamed += stream.take_stream_text(final=True)
    assert stopped and stream.text == "hello ENthe " and streamed == stream.text


def test_incomplete_tail_becomes_replacement_at_finish():
    stream = TextStream(ByteTokenizer(257, 256).detokenizer(), ())
    for token in b"ok\xe2\x82":
        stream.add(token)
    assert stream.text == "ok"
    stream.finish()
    assert stream.text == "ok\ufffd"


def test_greedy_is_argmax_and_seeded_sampling_repeats():
    logits = np.array([0.1, 3.0, 2.9, -1.0], np.float32)
    assert Sampler(SamplingParams()).sample(logits) == 1

    def draws(seed):
        sampler = Sampler(SamplingParams(1.5, 1.0, seed))
        return [sampler.sample(logits) for _ in range(50)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)


def test_top_p_keeps_only_the_nucleus():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    sampler = Sampler(SamplingParams(1.0, 0.6, 3))
    assert {sampler.sample(logits) for _ in range(300)} == {0, 1}
