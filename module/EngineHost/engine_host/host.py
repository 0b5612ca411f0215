"""The engine's life: cold start with timed phases, serving, suspend for a checkpoint and resume, exit.

The main thread starts the cores (before any ZeroMQ context exists, so no zmq thread or socket is
ever inherited), warms up, binds, writes ready.json, then waits for the scheduler thread. The
scheduler thread calls suspend() when a prepare_checkpoint has drained: it closes the link, removes
ready.json and blocks on the resume FIFO; on a resume message it re-acquires, rebinds and writes a new
ready.json.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Optional

from . import (__version__, backends, canary, curve, inventory, logs, process_environment, protocol, resume,
               runinfo)
from .frontend import Frontend, Outbox
from .options import EngineOptions, FailureCode, StartupError, is_out_of_memory
from .pipeline import ControlFailed, Pipeline
from .scheduler import PREPARED, EngineStatus, Scheduler, StopSignal
from .stage import NewSequence, SamplingParams, SeqInput, StepFailure, StepRequest

log = logging.getLogger("engine_host.host")

_WARMUP_PROMPT = "CriuCheckpoint warm-up."


class ResumeFailed(Exception):
    """The engine could not serve again after its resume message; `code` goes to failed.json."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def _timed(phases: dict, name: str):
    """Record how long the block took as phases[name] (phases keep the order they ran in)."""
    started = time.monotonic()
    yield
    phases[name] = round(time.monotonic() - started, 4)


def _merge_core_phases(phases: dict, reports: list, prefix: str = "") -> None:
    """Cores work in parallel: each named phase costs what the slowest core spent on it."""
    for report in reports:
        for name, seconds in report.get("phases", {}).items():
            key = prefix + name
            phases[key] = round(max(phases.get(key, 0.0), seconds), 4)


def _weights_from(replies: list) -> dict:
    """{"weights_from": "holder"|"files"} when the cores took released weights back: "holder" only when each
    of them mapped its weights from the holder; {} when none released any."""
    sources = {r["weights_from"] for r in replies if "weights_from" in r}
    if not sources:
        return {}
    return {"weights_from": "holder" if sources == {"holder"} else "files"}


class EngineHost:
    def __init__(self, options: EngineOptions, import_s: float):
        self._options = options
        self._import_s = import_s
        self._status = EngineStatus()
        self._plan: Optional[backends.BackendPlan] = None
        self._pipeline: Optional[Pipeline] = None
        self._reports: list = []
        self._frontend: Optional[Frontend] = None
        self._scheduler: Optional[Scheduler] = None
        self._exit_code = 0
        self._failure: Optional[tuple] = None  # (code, message) for failed.json after serving
        self._fifo = runinfo.resume_fifo_path(options.run_dir)
        self._canary: Optional[canary.Canary] = None  # the answer at the last prepare_checkpoint

    # ------------------------------------------------------------ cold start

    def run(self) -> int:
        runinfo.clear(self._options.run_dir)
        phases = {"import": round(self._import_s, 4)}
        try:
            self._start(phases)
        except StartupError as exc:
            return self._fail_startup(exc.code, exc.message)
        except Exception as exc:
            log.exception("startup failed")
            return self._fail_startup(FailureCode.STARTUP_FAILED, f"{type(exc).__name__}: {exc}")
        self._write_ready(phases)
        log.info("ready on %s after %.2fs: %s", self._frontend.endpoint, sum(phases.values()), phases)
        return self._serve()

    def _start(self, phases: dict) -> None:
        curve.require_curve()
        self._enter("plan")
        with _timed(phases, "plan"):  # options checked, tokenizer loaded
            self._plan = backends.plan(self._options)
        runtime = self._plan.runtime
        if runtime is not None:  # a backend with its own engine and processes (vllm)
            self._enter("engine")
            self._pipeline = runtime.create(self._plan)
            self._reports = self._pipeline.start(phases)
        else:
            self._pipeline = Pipeline(self._plan.stage_specs)
            self._enter("spawn_cores")
            with _timed(phases, "spawn_cores"):
                self._pipeline.spawn()
            self._enter("load_model")
            self._reports = self._pipeline.build()
            _merge_core_phases(phases, self._reports)
        # A stage may hold fewer sequences than planned (the torch KV pool is sized on the device).
        self._plan.max_num_seqs = min([self._plan.max_num_seqs] + [
            r["max_num_seqs"] for r in self._reports if "max_num_seqs" in r])
        self._enter("warmup")
        if runtime is not None:
            self._pipeline.warm_up(phases)  # times its own phases: warmup, and vLLM's rehearsal
        else:
            with _timed(phases, "warmup"):
                self._warm_up()
        scheduler_class = Scheduler if runtime is None else runtime.scheduler_class
        self._scheduler = scheduler_class(self._pipeline, self._plan, self._status, self)
        self._enter("bind")
        with _timed(phases, "bind"):
            curve.issue_client_keys(self._options.run_dir)
            self._bind(self._options.host, self._options.port, self._link_keys(curve.new_server_keys()))

    def _enter(self, phase: str) -> None:
        """Tell the launcher (phase.json) which cold-start phase begins, so its progress bar can name it."""
        runinfo.write_phase(self._options.run_dir, phase)

    def _warm_up(self) -> None:
        """One real prefill and decode through every core, so the first request pays no first-touch cost."""
        ids = self._plan.tokenizer.encode(_WARMUP_PROMPT)[: max(1, self._plan.max_model_len - 2)]
        new = NewSequence(len(ids) + 2, SamplingParams())
        first = self._pipeline.step(StepRequest([SeqInput(-1, ids, 0, new)]))
        steps = [first]
        if not isinstance(first, StepFailure):
            steps.append(self._pipeline.step(StepRequest([SeqInput(-1, first.tokens[:1], len(ids))])))
        steps.append(self._pipeline.step(StepRequest([], free=[-1])))
        failed = [s for s in steps if isinstance(s, StepFailure)]
        if failed:
            raise StartupError(FailureCode.STARTUP_FAILED, f"warm-up failed: {failed[0].message}")

    def _fail_startup(self, code: str, message: str) -> int:
        log.error("startup failed: %s: %s", code, message)
        if self._pipeline is not None:
            self._pipeline.stop()
        runinfo.write_failed(self._options.run_dir, code, message)
        return 1

    # ------------------------------------------------------------ serving

    def _link_keys(self, server: curve.ServerKeys) -> curve.LinkKeys:
        """The server keypair to serve with, and the client key the run directory holds now."""
        return curve.link_keys(self._options.run_dir, server)

    def _bind(self, host: str, port: int, keys: curve.LinkKeys, listener_fd: Optional[int] = None) -> None:
        self._frontend = Frontend(host, port, self._scheduler.inbox, self._answer_locally, keys, listener_fd)
        # Before ready.json: clients read the key once ready.json names the endpoint.
        curve.write_server_public(self._options.run_dir, keys.server)

    def connect_outbox(self) -> Outbox:
        return self._frontend.connect_outbox()

    def _write_ready(self, phases: dict, **extra) -> None:
        if self._plan.vllm_version is not None:
            extra["vllm_version"] = self._plan.vllm_version
        runinfo.write_ready(self._options.run_dir, self._frontend.endpoint, self._pids(), phases,
                            backend=self._plan.backend, model=self._plan.model,
                            config_hash=self._plan.config_hash, **extra)

    def _serve(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        thread = threading.Thread(target=self._run_scheduler, name="scheduler")
        thread.start()
        thread.join()  # interruptible: signal handlers run on this thread meanwhile
        if self._frontend is not None:
            self._frontend.close()
        self._pipeline.stop()
        runinfo.remove_ready(self._options.run_dir)
        if self._failure is not None:
            runinfo.write_failed(self._options.run_dir, *self._failure)
        log.info("exiting with code %d", self._exit_code)
        logs.flush()
        return self._exit_code

    def _run_scheduler(self) -> None:
        try:
            self._exit_code = self._scheduler.run()
            if self._scheduler.failure is not None:
                self._failure = (FailureCode.CORE_DIED, self._scheduler.failure)
        except ResumeFailed as exc:
            log.exception("resume failed")
            self._exit_code, self._failure = 1, (exc.code, str(exc))
        except ControlFailed as exc:  # a core could not release what a checkpoint must not carry
            log.error("stopping: %s", exc.message)
            self._exit_code, self._failure = 1, (exc.code, exc.message)
        except Exception as exc:
            log.exception("scheduler failed")
            self._exit_code, self._failure = 1, (FailureCode.ENGINE_FAILED,
                                                 f"scheduler failed: {type(exc).__name__}: {exc}")

    def _on_signal(self, signum: int, _frame) -> None:
        log.info("received signal %d", signum)
        if self._status.state == PREPARED:
            # The scheduler thread is blocked on the resume FIFO and nothing is in flight. The cores
            # exit on their own when this process's pipe ends close; an engine of its own (vllm) is
            # shut down first.
            if self._plan.runtime is not None:
                self._pipeline.stop()
            logs.flush()
            os._exit(0)
        self._scheduler.inbox.put(StopSignal())

    # ------------------------------------------------------------ checkpoint (scheduler.Lifecycle)

    def create_resume_fifo(self) -> str:
        resume.ensure_fifo(self._fifo)
        return self._fifo

    def inventory(self) -> inventory.TreeInventory:
        port = int(self._frontend.endpoint.rsplit(":", 1)[1])
        return inventory.take(self._pids(), port, process_environment.given,
                              inventory.BACKEND_PACKAGES.get(self._plan.backend, ()))

    def canary(self) -> canary.Canary:
        runtime = self._plan.runtime
        answer = self._pipeline.canary() if runtime is not None else canary.run_steps(self._pipeline,
                                                                                      self._plan.tokenizer)
        self._canary = answer
        return answer

    def _check_canary(self, message: resume.ResumeMessage, phases: dict) -> None:
        """After re-acquiring, before binding (so no client can reach an engine whose answer is wrong): the
        canary again, compared with the resume message's (the manifest's) or, without one, with the answer
        this engine gave at its own prepare_checkpoint."""
        expected = message.canary or self._canary
        if message.skip_canary or expected is None:
            log.info("resume: no canary check (%s)", "skipped" if message.skip_canary else "none taken")
            return
        with _timed(phases, "resume_canary"):
            try:
                got = self.canary()
            except canary.CanaryFailed as exc:
                raise ResumeFailed(FailureCode.RESUME_FAILED, f"the canary could not be answered: {exc}")
        problem = canary.mismatch(expected, got)
        if problem is not None:
            raise ResumeFailed(FailureCode.CANARY_MISMATCH,
                               "the canary after resume does not match the one taken at the checkpoint: "
                               f"{problem}")
        log.info("resume: canary matches (%s)", got)

    def suspend(self, reacquire: bool) -> None:
        """Scheduler thread, after prepare_checkpoint replied: close the link, wait, come back."""
        self._frontend.close()
        self._frontend = None
        log.info("prepared: no sockets open; waiting for a resume message on %s", self._fifo)
        logs.flush()
        # Last: the controller takes ready.json gone as "blocked on the FIFO, writing nothing more".
        runinfo.remove_ready(self._options.run_dir)
        message = resume.wait_for_resume(self._fifo)
        log.info("resume message: host=%s port=%d handover=%s weight_holder=%s", message.host, message.port,
                 message.handover, message.weight_holder)
        phases: dict = {}
        extra: dict = {}
        try:
            keys = self._link_keys(message.server)
            listener_fd = None
            if message.handover is not None:
                with _timed(phases, "resume_handover"):
                    handover_path = os.path.join(self._options.run_dir, message.handover)
                    listener_fd = resume.receive_listener(handover_path)
            if reacquire:
                args = {} if message.weight_holder is None else {"weight_holder": message.weight_holder}
                with _timed(phases, "resume_reacquire"):
                    replies = self._pipeline.control("reacquire", **args)
                _merge_core_phases(phases, replies, prefix="resume_")
                self._reports = [{**old, **new} for old, new in zip(self._reports, replies)]
                extra.update(_weights_from(replies))
            self._check_canary(message, phases)
            with _timed(phases, "resume_bind"):
                self._bind(message.host, message.port, keys, listener_fd)
        except ResumeFailed:
            raise
        except ControlFailed as exc:
            raise ResumeFailed(exc.code, exc.message) from exc
        except Exception as exc:
            code = FailureCode.GPU_OUT_OF_MEMORY if is_out_of_memory(exc) else FailureCode.RESUME_FAILED
            raise ResumeFailed(code, f"{type(exc).__name__}: {exc}") from exc
        self._write_ready(phases, **extra)
        log.info("resumed on %s: %s", self._frontend.endpoint, phases)

    # ------------------------------------------------------------ hello / health (socket thread)

    def _pids(self) -> list:
        return [{"pid": os.getpid(), "role": "frontend"}] + [
            {"pid": pid, "role": role} for pid, role in self._pipeline.roles]

    def _answer_locally(self, request: protocol.Request):
        if request.op == "health":
            s = self._status
            return protocol.HealthResult(s.state, s.in_flight, time.monotonic() - s.started, s.steps)
        if request.op == "hello":
            return self._hello()
        return None

    def _hello(self) -> protocol.HelloResult:
        plan, reports = self._plan, self._reports
        return protocol.HelloResult(
            protocol=protocol.PROTOCOL_VERSION, engine_version=__version__, backend=plan.backend,
            model=plan.model, device=reports[-1]["device"], dtype=reports[-1]["dtype"],
            workers=len(reports), config_hash=plan.config_hash, pids=self._pids(),
            host_memory_bytes=sum(r["host_memory_bytes"] for r in reports),
            gpu_memory_bytes=sum(r["gpu_memory_bytes"] for r in reports),
            kv_cache_bytes=sum(r.get("kv_pool_bytes", 0) for r in reports),
            capabilities=list(protocol.CAPABILITIES), max_model_len=plan.max_model_len,
            vocab_size=plan.tokenizer.vocab_size, eos_token_id=plan.tokenizer.eos_token_id,
            max_num_seqs=plan.max_num_seqs, tokenizer=plan.tokenizer.name, state=self._status.state,
            vllm_version=plan.vllm_version)
