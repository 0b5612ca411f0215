"""Wire protocol v2 (docs/protocol.md): envelope parsing, typed arguments and replies, error codes.

Everything that crosses the ROUTER socket is built or checked here, so the socket thread and the
scheduler never touch raw maps. Parsing is strict (unknown argument keys are refused) so that a client
typo such as `max_token` fails loudly instead of being silently ignored.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import msgpack

PROTOCOL_VERSION = 2


class ErrorCode:
    BAD_REQUEST = "bad_request"
    UNKNOWN_OP = "unknown_op"
    UNSUPPORTED_VERSION = "unsupported_version"
    PROMPT_TOO_LONG = "prompt_too_long"
    NOT_READY = "not_ready"
    ENGINE_ERROR = "engine_error"
    CHECKPOINT_UNSUPPORTED = "checkpoint_unsupported"  # prepare_checkpoint of an engine no dump can carry


class ProtocolError(Exception):
    """A request that cannot be served; becomes an `error` reply, never a dead engine."""

    def __init__(self, code: str, message: str, request_id: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


# ---------------------------------------------------------------- request arguments

@dataclass(frozen=True)
class NoArgs:
    pass


@dataclass(frozen=True)
class GenerateArgs:
    prompt: str
    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    seed: Optional[int] = None
    stop: tuple = ()
    stream: bool = False
    ignore_eos: bool = False


@dataclass(frozen=True)
class AbortArgs:
    request_id: str


@dataclass(frozen=True)
class PrepareCheckpointArgs:
    drain_timeout_s: float = 30.0
    abort_in_flight: bool = False
    keep_caches: bool = False  # release nothing: the KV cache (and weights) go into the image
    canary: bool = True  # answer the canary once drained, before anything is released


@dataclass(frozen=True)
class Request:
    """A validated envelope: `args` is the op's typed argument dataclass."""
    id: str
    op: str
    args: Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _bad(request_id: str, message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message, request_id)


def _check_keys(request_id: str, args: dict, allowed: set) -> None:
    unknown = sorted(str(k) for k in args if k not in allowed)
    if unknown:
        raise _bad(request_id, f"unknown argument(s): {', '.join(unknown)}")


def _parse_generate(rid: str, a: dict) -> GenerateArgs:
    _check_keys(rid, a, {f.name for f in dataclasses.fields(GenerateArgs)})
    prompt = a.get("prompt")
    if not isinstance(prompt, str):
        raise _bad(rid, "prompt is required and must be a string")
    if prompt == "":
        raise _bad(rid, "prompt must not be empty")
    max_tokens = a.get("max_tokens", 16)
    if not _is_int(max_tokens) or max_tokens < 1:
        raise _bad(rid, "max_tokens must be an integer >= 1")
    temperature = a.get("temperature", 0.0)
    if not _is_number(temperature) or temperature < 0:
        raise _bad(rid, "temperature must be a number >= 0")
    top_p = a.get("top_p", 1.0)
    if not _is_number(top_p) or not 0 < top_p <= 1:
        raise _bad(rid, "top_p must be a number in (0, 1]")
    seed = a.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**63):
        raise _bad(rid, "seed must be nil or an integer in [0, 2^63)")
    stop = a.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise _bad(rid, "stop must be a list of non-empty strings")
    stream = a.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(rid, "stream must be a boolean")
    ignore_eos = a.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise _bad(rid, "ignore_eos must be a boolean")
    return GenerateArgs(prompt, max_tokens, float(temperature), float(top_p), seed, tuple(stop),
                        stream, ignore_eos)


def _parse_abort(rid: str, a: dict) -> AbortArgs:
    _check_keys(rid, a, {"request_id"})
    target = a.get("request_id")
    if not isinstance(target, str) or not target:
        raise _bad(rid, "request_id is required and must be a non-empty string")
    return AbortArgs(target)


def _parse_prepare(rid: str, a: dict) -> PrepareCheckpointArgs:
    _check_keys(rid, a, {"drain_timeout_s", "abort_in_flight", "keep_caches", "canary"})
    timeout = a.get("drain_timeout_s", 30.0)
    if not _is_number(timeout) or timeout < 0:
        raise _bad(rid, "drain_timeout_s must be a number >= 0")
    abort = a.get("abort_in_flight", False)
    if not isinstance(abort, bool):
        raise _bad(rid, "abort_in_flight must be a boolean")
    keep = a.get("keep_caches", False)
    if not isinstance(keep, bool):
        raise _bad(rid, "keep_caches must be a boolean")
    canary = a.get("canary", True)
    if not isinstance(canary, bool):
        raise _bad(rid, "canary must be a boolean")
    return PrepareCheckpointArgs(float(timeout), abort, keep, canary)


def _parse_no_args(rid: str, a: dict) -> NoArgs:
    _check_keys(rid, a, set())
    return NoArgs()


ARG_PARSERS = {
    "hello": _parse_no_args,
    "health": _parse_no_args,
    "generate": _parse_generate,
    "abort": _parse_abort,
    "prepare_checkpoint": _parse_prepare,
    "shutdown": _parse_no_args,
}


def parse_request(payload: bytes) -> Request:
    """Decode and validate one request frame; raises ProtocolError (request_id set when known)."""
    try:
        envelope = msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage input
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"payload is not valid msgpack: {exc}") from None
    if not isinstance(envelope, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "request must be a msgpack map")
    rid = envelope.get("id")
    if not isinstance(rid, str) or not rid:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "id is required and must be a non-empty string")
    version = envelope.get("v")
    if not _is_int(version):
        raise _bad(rid, "v is required and must be an integer")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                            f"protocol version {version} is not supported (this engine speaks "
                            f"{PROTOCOL_VERSION})", rid)
    op = envelope.get("op")
    if not isinstance(op, str):
        raise _bad(rid, "op is required and must be a string")
    args = envelope.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _bad(rid, "args must be a map")
    parser = ARG_PARSERS.get(op)
    if parser is None:
        raise ProtocolError(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}", rid)
    return Request(rid, op, parser(rid, args))


# ---------------------------------------------------------------- replies

@dataclass(frozen=True)
class GenerateChunk:
    text: str
    token_ids: list


@dataclass(frozen=True)
class GenerateResult:
    text: str
    token_ids: list
    finish_reason: str  # length | stop | abort
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # 0 when no token was generated (aborted before its first step)
    duration_s: float


@dataclass(frozen=True)
class HealthResult:
    state: str  # ready | draining | prepared
    in_flight: int
    uptime_s: float
    steps: int


@dataclass(frozen=True)
class HelloResult:
    protocol: int
    engine_version: str
    backend: str
    model: str
    device: str
    dtype: str
    workers: int
    config_hash: str
    pids: list
    host_memory_bytes: int
    gpu_memory_bytes: int
    kv_cache_bytes: int
    capabilities: list
    max_model_len: int
    vocab_size: int
    eos_token_id: int
    max_num_seqs: int
    tokenizer: str
    state: str
    # vllm backend only (omitted for the others): vllm.__version__ of the engine's vLLM.
    vllm_version: Optional[str] = dataclasses.field(default=None, metadata={"omit_if_none": True})


@dataclass(frozen=True)
class AbortResult:
    aborted: bool


@dataclass(frozen=True)
class PrepareCheckpointResult:
    state: str
    resume_fifo: str
    aborted: int = 0
    gpu_memory_bytes: int = 0  # what the engine still holds on GPUs after releasing
    host_memory_bytes: int = 0  # weights (and CPU caches) still resident in host memory
    # The canary's answer ({prompt, token_ids, logprobs}; nil when not asked for) and what it took.
    canary: Optional[dict] = None
    canary_s: float = 0.0
    # What the tree is: {processes: [{pid, role, gpu_uuids}], unix_peers_visible, versions, environment}.
    inventory: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class EmptyResult:
    pass


@dataclass(frozen=True)
class ErrorResult:
    code: str
    message: str


def _pack(request_id: Optional[str], kind: str, result: Any) -> bytes:
    body = {"v": PROTOCOL_VERSION, "id": request_id, "kind": kind}
    body.update(dataclasses.asdict(result))
    for f in dataclasses.fields(result):
        if f.metadata.get("omit_if_none") and body[f.name] is None:
            del body[f.name]
    return msgpack.packb(body, use_bin_type=True)


def encode_chunk(request_id: str, chunk: GenerateChunk) -> bytes:
    return _pack(request_id, "chunk", chunk)


def encode_final(request_id: str, result: Any) -> bytes:
    return _pack(request_id, "final", result)


def encode_error(request_id: Optional[str], code: str, message: str) -> bytes:
    return _pack(request_id, "error", ErrorResult(code, message))


CAPABILITIES = ["generate", "stream", "abort", "batch", "checkpoint"]
