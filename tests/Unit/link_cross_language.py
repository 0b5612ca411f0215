"""The Python half of LinkCrossLanguageTests: the engine's own protocol.py reads the requests the module
wrote, and writes every reply it can send, so a message that one side names differently from the other
fails there.

    python3 link_cross_language.py describe   msgpack on stdout: version, ops, error codes, one reply per kind
    python3 link_cross_language.py parse      msgpack list of request payloads on stdin; what parse_request
                                              understood of each on stdout

Needs module/EngineHost on PYTHONPATH.
"""
from __future__ import annotations

import dataclasses
import inspect
import sys

import msgpack

from engine_host import protocol

# One realistic value of every reply the engine sends, built with protocol.py's own types and encoders.
REPLIES = {
    protocol.HelloResult: (protocol.encode_final, protocol.HelloResult(
        protocol=protocol.PROTOCOL_VERSION, engine_version="0.1.0", backend="torch", model="/models/llama",
        device="cuda:0 (NVIDIA H100 80GB HBM3)", dtype="bfloat16", workers=1, config_hash="3f9c2a41d07be519",
        pids=[{"pid": 4242, "role": "frontend"}, {"pid": 4250, "role": "core-0"}],
        host_memory_bytes=3_221_225_472, gpu_memory_bytes=17_179_869_184, kv_cache_bytes=8_589_934_592,
        capabilities=list(protocol.CAPABILITIES), max_model_len=4096, vocab_size=128256, eos_token_id=128001,
        max_num_seqs=64, tokenizer="hf:PreTrainedTokenizerFast", state="ready", vllm_version="0.11.0")),
    protocol.HealthResult: (protocol.encode_final, protocol.HealthResult(
        state="draining", in_flight=3, uptime_s=5123.25, steps=9_876_543_210)),
    protocol.GenerateChunk: (protocol.encode_chunk,
                             protocol.GenerateChunk(text=" upon a", token_ids=[2402, 264])),
    protocol.GenerateResult: (protocol.encode_final, protocol.GenerateResult(
        text="Once upon a time, é", token_ids=[9290, 2402, 264, 892, 11, 4046], finish_reason="stop",
        prompt_tokens=5, completion_tokens=6, ttft_s=0.0375, duration_s=0.5125)),
    protocol.AbortResult: (protocol.encode_final, protocol.AbortResult(aborted=True)),
    protocol.PrepareCheckpointResult: (protocol.encode_final, protocol.PrepareCheckpointResult(
        state="prepared", resume_fifo="/run/criu-checkpoint/engines/3f9c2a41d07b/resume.fifo", aborted=2,
        gpu_memory_bytes=536_870_912, host_memory_bytes=1_073_741_824,
        canary={"prompt": "The capital of France is", "token_ids": [12366, 13], "logprobs": [-0.4518, -1.25]},
        canary_s=0.0425,
        inventory={"processes": [{"pid": 4242, "role": "frontend", "gpu_uuids": []},
                                 {"pid": 4250, "role": "core-0",
                                  "gpu_uuids": ["GPU-5f0c6a1e-2b7d-4c1a-9e3f-0a1b2c3d4e5f"]}],
                   "unix_peers_visible": True,
                   "versions": {"python": "3.11.2", "torch": "2.9.0", "torch_cuda": "13.0"},
                   "environment": {"names": ["CUDA_VISIBLE_DEVICES"], "sha256": "ab" * 32}})),
    protocol.EmptyResult: (protocol.encode_final, protocol.EmptyResult()),
    protocol.ErrorResult: (lambda rid, r: protocol.encode_error(rid, r.code, r.message),
                           protocol.ErrorResult(code=protocol.ErrorCode.PROMPT_TOO_LONG,
                                                message="prompt (4000 tokens) + max_tokens (200) > 4096")),
}


def _argument_types() -> set:
    """The request side's dataclasses: what the op parsers return, and the envelope."""
    returned = {inspect.signature(parser).return_annotation for parser in protocol.ARG_PARSERS.values()}
    return {getattr(protocol, name) for name in returned} | {protocol.Request}


def _reply_types() -> set:
    dataclass_types = {t for _, t in inspect.getmembers(protocol, inspect.isclass)
                       if dataclasses.is_dataclass(t) and t.__module__ == protocol.__name__}
    return dataclass_types - _argument_types()


def describe() -> dict:
    missing = sorted(t.__name__ for t in _reply_types() - set(REPLIES))
    if missing:
        raise SystemExit(f"protocol.py has reply types this script has no example of: {', '.join(missing)}")
    replies = [{"type": reply_type.__name__, "payload": encode("r-42", result)}
               for reply_type, (encode, result) in REPLIES.items()]
    codes = [v for k, v in vars(protocol.ErrorCode).items() if not k.startswith("_")]
    return {"version": protocol.PROTOCOL_VERSION, "ops": list(protocol.ARG_PARSERS), "error_codes": codes,
            "replies": replies}


def _understood(payload: bytes) -> dict:
    try:
        request = protocol.parse_request(payload)
    except protocol.ProtocolError as exc:
        return {"error": exc.code, "message": exc.message}
    args = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(request.args).items()}
    return {"id": request.id, "op": request.op, "args": args}


def parse(payloads: list) -> list:
    return [_understood(payload) for payload in payloads]


def main(mode: str) -> int:
    if mode == "describe":
        answer = describe()
    else:
        answer = parse(msgpack.unpackb(sys.stdin.buffer.read()))
    sys.stdout.buffer.write(msgpack.packb(answer, use_bin_type=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
