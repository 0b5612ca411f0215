"""The compute loop: admits requests, runs one batched step of every active sequence at a time through
the core pipeline, turns sampled tokens into replies, and carries out abort, prepare_checkpoint and
shutdown. It runs on its own thread; the socket thread hands it requests through `inbox` and it
replies through an Outbox (an inproc PUSH socket that only this thread touches).
"""
from __future__ import annotations

import collections
import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from . import protocol
from .canary import Canary, CanaryFailed
from .inventory import TreeInventory
from .pipeline import ControlFailed, CoreDied, Pipeline
from .protocol import ErrorCode, GenerateArgs
from .stage import NewSequence, SamplingParams, SeqInput, StepFailure, StepRequest
from .textstream import TextStream

log = logging.getLogger("engine_host.scheduler")

_IDLE_CHECK_S = 1.0  # how often an idle loop checks that the cores are alive
EXIT_CORE_DIED = 3

READY, DRAINING, PREPARED, STOPPING = "ready", "draining", "prepared", "stopping"


class EngineStatus:
    """Counters the socket thread reads for `health` and `hello` (plain attribute reads under the GIL)."""

    def __init__(self):
        self.state = READY
        self.in_flight = 0
        self.steps = 0
        self.started = time.monotonic()


@dataclass
class Incoming:
    """A validated request from a client, as the socket thread hands it over."""
    identity: bytes
    request: protocol.Request
    arrival: float


@dataclass
class StopSignal:
    """SIGTERM/SIGINT: shut down as `shutdown` would, with no one to reply to."""


@dataclass
class _Sequence:
    seq_id: int
    identity: bytes
    request_id: str
    args: GenerateArgs
    prompt_ids: list
    arrival: float
    text: TextStream
    output_ids: list = field(default_factory=list)
    unstreamed_ids: list = field(default_factory=list)
    first_token_at: Optional[float] = None
    admitted: bool = False  # has (or had) caches in the cores
    prefilled: bool = False


class Lifecycle(Protocol):
    """What the scheduler needs from the engine host around a checkpoint."""

    def connect_outbox(self):
        """A new Outbox on the current link, for the calling (scheduler) thread."""

    def create_resume_fifo(self) -> str:
        """Make sure the resume FIFO exists; its path."""

    def suspend(self, reacquire: bool) -> None:
        """Close the link, wait for a resume message, re-acquire (unless told not to), answer the canary and
        compare it, serve on a new link."""

    def inventory(self) -> TreeInventory:
        """What the engine's process tree holds now (inventory.py)."""

    def canary(self) -> Canary:
        """The canary's answer now, remembered as the one a resume compares with; raises CanaryFailed."""


@dataclass
class _PendingPrepare:
    identity: bytes
    request_id: str
    deadline: float
    keep_caches: bool
    canary: bool  # answer the canary once drained
    inventory: dict
    aborted: int = 0
    canary_answer: Optional[dict] = None
    canary_s: float = 0.0


class RequestLoop:
    """What every compute loop does the same way whatever runs the model: abort, prepare_checkpoint (drain,
    then suspend on the resume FIFO), shutdown, failing everything when the model's processes die, and the
    replies. Subclasses keep `_by_key` ((identity, request_id) -> request) and provide `_abort(request)`
    (end it now, replying) and `_drop(request)` (forget it without a reply)."""

    def __init__(self, status: EngineStatus, lifecycle: Lifecycle):
        self.inbox: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._status = status
        self._lifecycle = lifecycle
        self._outbox = None
        self._by_key: dict = {}
        self._prepare: Optional[_PendingPrepare] = None
        self._exit_code: Optional[int] = None
        self.failure: Optional[str] = None  # why the model's processes died, when they did

    def _abort(self, request) -> None:
        raise NotImplementedError

    def _drop(self, request) -> None:
        raise NotImplementedError

    def _on_generate(self, item: Incoming) -> None:
        raise NotImplementedError

    def _checkpoint_refusal(self) -> Optional[str]:
        """Why no checkpoint of this engine can be taken, or None; asked before prepare_checkpoint drains."""
        return None

    def _handle(self, item: Any) -> None:
        """A stop signal, or a request the socket thread queued (it answers every other known op itself)."""
        if isinstance(item, StopSignal):
            log.info("stop signal: shutting down")
            self._shut_down()
            return
        op = item.request.op
        if op == "generate":
            self._on_generate(item)
        elif op == "abort":
            self._on_abort(item)
        elif op == "prepare_checkpoint":
            self._on_prepare(item)
        elif op == "shutdown":
            self._shut_down()
            self._send_final(item.identity, item.request.id, protocol.EmptyResult())
        else:
            self._send_error(item.identity, item.request.id, ErrorCode.UNKNOWN_OP,
                             f"op {op!r} is not handled by the scheduler")

    def _refuses(self, item: Incoming) -> bool:
        """Answer a generate the engine cannot take now (not ready, id already in flight) with an error."""
        rid = item.request.id
        if self._status.state != READY:
            self._send_error(item.identity, rid, ErrorCode.NOT_READY,
                             f"engine is {self._status.state}; not accepting work")
            return True
        if (item.identity, rid) in self._by_key:
            self._send_error(item.identity, rid, ErrorCode.BAD_REQUEST,
                             f"request id {rid!r} is already in flight on this connection")
            return True
        return False

    def _on_abort(self, item: Incoming) -> None:
        request = self._by_key.get((item.identity, item.request.args.request_id))
        if request is not None:
            self._abort(request)
        self._send_final(item.identity, item.request.id, protocol.AbortResult(request is not None))

    def _abort_all(self) -> int:
        in_flight = list(self._by_key.values())
        for request in in_flight:
            self._abort(request)
        return len(in_flight)

    def _on_prepare(self, item: Incoming) -> None:
        if self._status.state != READY:
            self._send_error(item.identity, item.request.id, ErrorCode.NOT_READY,
                             f"engine is {self._status.state}")
            return
        refusal = self._checkpoint_refusal()
        tree = None
        if refusal is None:
            tree = self._lifecycle.inventory()
            refusal = tree.refusal()
        if refusal is not None:
            log.warning("prepare_checkpoint refused: %s", refusal)
            self._send_error(item.identity, item.request.id, ErrorCode.CHECKPOINT_UNSUPPORTED,
                             f"{refusal}; the engine serves on")
            return
        args = item.request.args
        log.info("prepare_checkpoint: draining %d request(s) (timeout %.1fs, abort %s, keep caches %s)",
                 len(self._by_key), args.drain_timeout_s, args.abort_in_flight, args.keep_caches)
        self._status.state = DRAINING
        deadline = time.monotonic() + args.drain_timeout_s
        self._prepare = _PendingPrepare(item.identity, item.request.id, deadline, args.keep_caches,
                                        args.canary, tree.to_dict())
        if args.abort_in_flight:
            self._prepare.aborted += self._abort_all()

    def _drained(self) -> bool:
        """True once no request is in flight; requests still running at the drain deadline are aborted."""
        if self._by_key and time.monotonic() >= self._prepare.deadline:
            log.warning("prepare_checkpoint: drain timeout; aborting %d request(s)", len(self._by_key))
            self._prepare.aborted += self._abort_all()
        return not self._by_key

    def _answer_canary(self, pending: _PendingPrepare) -> bool:
        """Once drained, before anything is released: the canary's answer into `pending`. False when the
        engine cannot answer it: prepare_checkpoint then fails with engine_error and the engine serves on."""
        if not pending.canary:
            return True
        started = time.monotonic()
        try:
            pending.canary_answer = self._lifecycle.canary().to_dict()
        except CanaryFailed as exc:
            log.error("prepare_checkpoint: the canary failed: %s", exc)
            self._prepare = None
            self._status.state = READY
            self._send_error(pending.identity, pending.request_id, ErrorCode.ENGINE_ERROR,
                             f"prepare_checkpoint failed: the canary could not be answered: {exc}; "
                             "the engine serves on")
            return False
        pending.canary_s = time.monotonic() - started
        log.info("canary at prepare: %s (%.3fs)", pending.canary_answer, pending.canary_s)
        return True

    @staticmethod
    def _prepared(pending: _PendingPrepare, fifo: str, gpu_bytes: int = 0,
                  host_bytes: int = 0) -> protocol.PrepareCheckpointResult:
        return protocol.PrepareCheckpointResult(
            "prepared", fifo, pending.aborted, gpu_bytes, host_bytes, canary=pending.canary_answer,
            canary_s=round(pending.canary_s, 4), inventory=pending.inventory)

    def _suspend(self, pending: _PendingPrepare, result: Any) -> None:
        """Replies to prepare_checkpoint, closes the link and blocks on the resume FIFO until resumed."""
        self._send_final(pending.identity, pending.request_id, result)
        self._outbox.close_link()
        self._status.state = PREPARED
        # Returns once resumed and serving on a new socket; what was kept needs no re-acquiring.
        self._lifecycle.suspend(reacquire=not pending.keep_caches)
        self._outbox = self._lifecycle.connect_outbox()
        self._status.state = READY

    def _shut_down(self) -> None:
        self._status.state = STOPPING
        self._abort_all()
        if self._prepare is not None:
            self._send_error(self._prepare.identity, self._prepare.request_id, ErrorCode.NOT_READY,
                             "engine shut down before the checkpoint was prepared")
            self._prepare = None
        self._exit_code = 0

    def _fail_everything(self, reason: str) -> None:
        log.error("engine failure: %s; failing %d request(s)", reason, len(self._by_key))
        self.failure = reason
        self._status.state = STOPPING
        for request in list(self._by_key.values()):
            self._drop(request)
            self._send_error(request.identity, request.request_id, ErrorCode.ENGINE_ERROR, reason)
        if self._prepare is not None:
            self._send_error(self._prepare.identity, self._prepare.request_id,
                             ErrorCode.ENGINE_ERROR, reason)
            self._prepare = None
        # Requests still queued to us get the same answer rather than silence.
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Incoming):
                self._send_error(item.identity, item.request.id, ErrorCode.ENGINE_ERROR, reason)

    def _send_chunk(self, request, text: str) -> None:
        self._outbox.send(request.identity, protocol.encode_chunk(
            request.request_id, protocol.GenerateChunk(text, request.unstreamed_ids)))
        request.unstreamed_ids = []

    def _send_final(self, identity: bytes, request_id: str, result: Any) -> None:
        self._outbox.send(identity, protocol.encode_final(request_id, result))

    def _send_error(self, identity: bytes, request_id: str, code: str, message: str) -> None:
        self._outbox.send(identity, protocol.encode_error(request_id, code, message))


class Scheduler(RequestLoop):
    def __init__(self, pipeline: Pipeline, plan, status: EngineStatus, lifecycle: Lifecycle):
        super().__init__(status, lifecycle)
        self._pipeline = pipeline
        self._tokenizer = plan.tokenizer
        self._max_model_len = plan.max_model_len
        self._max_num_seqs = plan.max_num_seqs
        self._max_batched_tokens = plan.max_batched_tokens
        self._waiting: "collections.deque[_Sequence]" = collections.deque()
        self._running: dict = {}  # seq_id -> _Sequence
        self._to_free: list = []
        self._next_seq_id = 0

    # ------------------------------------------------------------ loop

    def run(self) -> int:
        """The scheduler thread's body; returns the process exit code."""
        self._outbox = self._lifecycle.connect_outbox()
        try:
            while self._exit_code is None:
                self._receive()
                if self._exit_code is not None:
                    break
                if self._waiting or self._running:
                    self._step()
                if self._prepare is not None:
                    self._advance_prepare()
        except CoreDied as exc:
            self._fail_everything(str(exc))
            self._exit_code = EXIT_CORE_DIED
        finally:
            self._outbox.close_link()  # behind the last replies, so they are flushed first
        return self._exit_code

    def _receive(self) -> None:
        busy = self._waiting or self._running or self._prepare is not None
        if not busy:
            try:
                self._handle(self.inbox.get(timeout=_IDLE_CHECK_S))
            except queue.Empty:
                self._pipeline.check_alive()
                return
        while self._exit_code is None:
            try:
                self._handle(self.inbox.get_nowait())
            except queue.Empty:
                return

    # ------------------------------------------------------------ ops

    def _on_generate(self, item: Incoming) -> None:
        rid, args = item.request.id, item.request.args
        if self._refuses(item):
            return
        key = (item.identity, rid)
        prompt_ids = self._tokenizer.encode(args.prompt)
        if len(prompt_ids) + args.max_tokens > self._max_model_len:
            self._send_error(item.identity, rid, ErrorCode.PROMPT_TOO_LONG,
                             f"prompt tokens ({len(prompt_ids)}) + max_tokens ({args.max_tokens}) "
                             f"exceed max_model_len ({self._max_model_len})")
            return
        seq = _Sequence(self._next_seq_id, item.identity, rid, args, prompt_ids, item.arrival,
                        TextStream(self._tokenizer.detokenizer(), args.stop))
        self._next_seq_id += 1
        self._waiting.append(seq)
        self._by_key[key] = seq
        self._status.in_flight = len(self._by_key)

    def _abort(self, seq: _Sequence) -> None:
        self._finish(seq, "abort")

    def _advance_prepare(self) -> None:
        if not self._drained():
            return
        if self._to_free:  # finished sequences' caches, so the canary finds room in the KV pool
            self._pipeline.step(StepRequest([], self._take_free()))
        if not self._answer_canary(self._prepare):
            return
        pending, self._prepare = self._prepare, None
        started = time.monotonic()
        if pending.keep_caches:
            reports = [r for r in self._pipeline.control("report") if isinstance(r, dict)]
            if not self._can_keep(pending, reports):
                return
        else:
            self._to_free = []  # release drops every sequence's caches anyway
            reports = self._release(pending)
        gpu_bytes = sum(int(r.get("gpu_memory_bytes", 0)) for r in reports)
        host_bytes = sum(int(r.get("host_memory_bytes", 0)) for r in reports)
        fifo = self._lifecycle.create_resume_fifo()
        log.info("prepared for checkpoint in %.3fs; still held: %d bytes on GPUs, %d in host memory",
                 time.monotonic() - started, gpu_bytes, host_bytes)
        self._suspend(pending, self._prepared(pending, fifo, gpu_bytes, host_bytes))

    def _can_keep(self, pending: _PendingPrepare, reports: list) -> bool:
        """keep_caches puts the weights into the image, which cannot carry weights mapped from a weight
        holder's GPU memory: then the prepare is refused (False) and the engine serves on."""
        if not any(r.get("weight_mappings") for r in reports):
            return True
        self._status.state = READY
        self._send_error(pending.identity, pending.request_id, ErrorCode.CHECKPOINT_UNSUPPORTED,
                         "this engine's weights are mapped from a weight holder's GPU memory, which a "
                         "checkpoint cannot carry: prepare without keep_caches; the engine serves on")
        return False

    def _release(self, pending: _PendingPrepare) -> list:
        """The cores' reports after releasing. A core that could not release cannot serve or be checkpointed:
        the prepare gets the reason and the engine stops (engine_failed)."""
        try:
            return [r for r in (self._pipeline.control("release") or []) if isinstance(r, dict)]
        except ControlFailed as exc:
            self._send_error(pending.identity, pending.request_id, ErrorCode.ENGINE_ERROR,
                             f"prepare_checkpoint failed: {exc.message}; the engine stops")
            raise

    # ------------------------------------------------------------ stepping

    def _admit(self) -> None:
        budget = self._max_batched_tokens
        admitted_any = False
        while self._waiting and len(self._running) < self._max_num_seqs:
            seq = self._waiting[0]
            if admitted_any and len(seq.prompt_ids) > budget:
                break
            self._waiting.popleft()
            seq.admitted = True
            self._running[seq.seq_id] = seq
            budget -= len(seq.prompt_ids)
            admitted_any = True

    def _step(self) -> None:
        self._admit()
        batch = list(self._running.values())
        inputs = []
        for seq in batch:
            if seq.prefilled:
                inputs.append(SeqInput(seq.seq_id, [seq.output_ids[-1]],
                                       len(seq.prompt_ids) + len(seq.output_ids) - 1))
            else:
                a = seq.args
                inputs.append(SeqInput(seq.seq_id, seq.prompt_ids, 0, NewSequence(
                    len(seq.prompt_ids) + a.max_tokens, SamplingParams(a.temperature, a.top_p, a.seed))))
        result = self._pipeline.step(StepRequest(inputs, self._take_free()))
        if isinstance(result, StepFailure):
            log.error("step failed: %s", result.message)
            for seq in batch:
                self._drop(seq)
                self._send_error(seq.identity, seq.request_id, ErrorCode.ENGINE_ERROR, result.message)
            return
        self._status.steps += 1
        now = time.monotonic()
        for seq, token in zip(batch, result.tokens):
            self._advance(seq, token, now)

    def _advance(self, seq: _Sequence, token: int, now: float) -> None:
        seq.prefilled = True
        if seq.first_token_at is None:
            seq.first_token_at = now
        if token == self._tokenizer.eos_token_id and not seq.args.ignore_eos:
            self._finish(seq, "stop")
            return
        seq.output_ids.append(token)
        seq.unstreamed_ids.append(token)
        if seq.text.add(token):
            self._finish(seq, "stop")
        elif len(seq.output_ids) >= seq.args.max_tokens:
            self._finish(seq, "length")
        elif seq.args.stream:
            text = seq.text.take_stream_text(final=False)
            if text:
                self._send_chunk(seq, text)

    def _finish(self, seq: _Sequence, reason: str) -> None:
        seq.text.finish()
        if seq.args.stream:
            text = seq.text.take_stream_text(final=True)
            if text or seq.unstreamed_ids:
                self._send_chunk(seq, text)
        now = time.monotonic()
        self._drop(seq)
        self._send_final(seq.identity, seq.request_id, protocol.GenerateResult(
            text=seq.text.text, token_ids=list(seq.output_ids), finish_reason=reason,
            prompt_tokens=len(seq.prompt_ids), completion_tokens=len(seq.output_ids),
            ttft_s=0.0 if seq.first_token_at is None else seq.first_token_at - seq.arrival,
            duration_s=now - seq.arrival))

    def _drop(self, seq: _Sequence) -> None:
        self._by_key.pop((seq.identity, seq.request_id), None)
        if self._running.pop(seq.seq_id, None) is None:
            try:
                self._waiting.remove(seq)
            except ValueError:
                pass
        if seq.admitted:
            self._to_free.append(seq.seq_id)
        self._status.in_flight = len(self._by_key)

    def _take_free(self) -> list:
        free, self._to_free = self._to_free, []
        return free
