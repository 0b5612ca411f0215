"""The vllm backend at run time: vLLM's AsyncLLM on an event loop of its own, bridged to the link.

Process model (docs/vllm.md): the frontend process keeps our socket thread and scheduler thread, and
adds one thread running an asyncio loop that owns the AsyncLLM (vLLM's client half). AsyncLLM starts
vLLM's EngineCore process(es), which schedule and batch on their own, so there is no core pipeline of
ours. The scheduler thread (VllmScheduler) keeps the protocol's state: it validates, tokenizes and
builds SamplingParams, then hands each request to the loop, where a task iterates
`AsyncLLM.generate(...)` (DELTA outputs) and posts every RequestOutput back to the scheduler's inbox.
Abort cancels that task, which is how vLLM's own API server aborts (generate() aborts the request in
the engine when it is cancelled). Only the loop thread touches AsyncLLM; only the scheduler thread
touches the reply socket.

prepare_checkpoint: refused at once (checkpoint_unsupported) for an engine spanning several GPUs, whose
NCCL communicators nothing in vLLM prepares for a checkpoint. Otherwise drain as for every backend, answer
the canary, then `reset_prefix_cache()`, vLLM's process-checkpoint hook `checkpoint_prepare()` where vLLM
has it, and `sleep(level)` (vLLM's sleep mode drops the KV cache; level 2, the default, discards the
weights too, level 1 offloads them to host memory). Resume: `wake_up()` (level 2: wake the weights,
`reload_weights`, wake the KV cache), then `checkpoint_restore()`, then the canary again.

At level 2 the engine rehearses at startup what prepare and resume will do, as vLLM's snapshot server does
before it publishes a snapshot (vllm/snapshot/server.py `run_vllm_snapshot_child`): canary, sleep, wake,
reload, canary again; an answer that changed fails the start.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import inspect
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional

from .. import canary, inventory, protocol
from ..options import FailureCode, StartupError
from ..protocol import ErrorCode, GenerateArgs
from ..scheduler import EXIT_CORE_DIED, READY, Incoming, RequestLoop

log = logging.getLogger("engine_host.vllm")

_WARMUP_PROMPT = "CriuCheckpoint warm-up."
_IDLE_CHECK_S = 1.0
_CALL_TIMEOUT_S = 600.0  # sleep/wake_up of a large model move tens of GB
_STOP_TIMEOUT_S = 20.0
_MAX_IPC_DIR_LEN = 70  # unix socket paths are limited to 107 bytes; vLLM appends "/" and a 36-byte uuid
# ParallelConfig sizes above 1 put NCCL communicators between vLLM's processes.
_PARALLEL_SIZES = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
RESOURCE_TRACKER = "resource_tracker"


@contextlib.contextmanager
def _timed(phases: dict, name: str):
    started = time.monotonic()
    yield
    phases[name] = round(time.monotonic() - started, 4)


def _set_ipc_directory(run_dir: str):
    """vLLM's frontend <-> EngineCore ZeroMQ ipc socket files go into the run directory itself, which a
    restore bind-mounts per replica, so replicas never share (or collide on) a socket path. Not a folder
    inside it: CRIU binds the listening sockets again at their paths before the engine runs, in the
    replica's run directory, which holds no such folder. Returns the directory, or None when the user
    chose one or the run directory's path is too long for it.
    (The rest of vLLM's environment is process_environment.DEFAULTS, set at the engine host's start.)"""
    if "VLLM_RPC_BASE_PATH" in os.environ or len(run_dir) > _MAX_IPC_DIR_LEN:
        return None
    os.environ["VLLM_RPC_BASE_PATH"] = run_dir
    return run_dir


def _import_vllm() -> SimpleNamespace:
    """vLLM's V1 API, by the module paths of vLLM >= 0.8 (docs/vllm.md)."""
    try:
        import vllm
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind, SamplingParams
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError as exc:
        raise StartupError(FailureCode.BACKEND_UNAVAILABLE,
                           f"cannot import vLLM's V1 engine API: {type(exc).__name__}: {exc}")
    # Request errors: VLLMClientError in current vLLM (not a ValueError); ValueError before it existed, and
    # still for some checks inside generate(), which wraps those in EngineGenerateError (docs/vllm.md).
    # SamplingParams refuses an unknown keyword with a TypeError.
    request_errors: tuple = (ValueError,)
    try:
        from vllm.exceptions import VLLMClientError

        request_errors = (VLLMClientError,) + request_errors
    except ImportError:
        pass
    try:
        from vllm.platforms import current_platform
    except Exception:  # a platform probe that fails here fails again, with a better message, below
        current_platform = None
    return SimpleNamespace(
        version=str(getattr(vllm, "__version__", "unknown")), AsyncEngineArgs=AsyncEngineArgs,
        AsyncLLM=AsyncLLM, SamplingParams=SamplingParams, RequestOutputKind=RequestOutputKind,
        UsageContext=UsageContext, EngineDeadError=EngineDeadError, request_errors=request_errors,
        client_errors=request_errors + (TypeError,), platform=current_platform)


async def _maybe_await(value):
    return await value if inspect.isawaitable(value) else value


def _process_start_ticks(pid: int) -> Optional[int]:
    """When the process started (clock ticks after boot); None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


# NVML's Python binding: vLLM's own copy first (vllm/third_party/pynvml.py, the one vLLM itself uses since it
# stopped depending on nvidia-ml-py), then nvidia-ml-py's `pynvml` (older vLLM).
_NVML_MODULES = ("vllm.third_party.pynvml", "pynvml")


def _import_nvml():
    """The first NVML binding that imports, or None."""
    for name in _NVML_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _gpu_memory_bytes(pids: list) -> int:
    """GPU memory these processes hold, by NVML; 0 without a binding or a driver."""
    pynvml = _import_nvml()
    if pynvml is None:
        log.info("no GPU memory figure: neither %s imports", " nor ".join(_NVML_MODULES))
        return 0
    try:
        pynvml.nvmlInit()
        try:
            wanted, total = set(pids), 0
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if p.pid in wanted and p.usedGpuMemory:
                        total += p.usedGpuMemory
            return total
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # no driver, or NVML failing: the cmdlets measure GPU memory themselves
        log.info("no GPU memory figure from NVML (%s): %s", pynvml.__name__, exc)
        return 0


def _command_line(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def process_role(pid: int, title_prefix: str) -> Optional[str]:
    """What a process under the frontend is: the title vLLM gave it ("<prefix>::EngineCore" ->
    "EngineCore", "<prefix>::Worker_TP1" -> "Worker_TP1"; vllm/utils/system_utils.py set_process_title),
    "resource_tracker" for multiprocessing's resource tracker (which every spawn starts), else None."""
    argv = _command_line(pid)
    if not argv:
        return None
    marker = f"{title_prefix}::"
    if argv[0].startswith(marker):
        return argv[0][len(marker):].strip() or None
    if "-c" in argv[:-1] and "multiprocessing.resource_tracker" in argv[argv.index("-c") + 1]:
        return RESOURCE_TRACKER
    return None


def label_processes(pids: list, title_prefix: str) -> list:
    """(pid, role) for each pid: its role, or process-<i> for those that have none (numbered in order)."""
    labelled, unnamed = [], 0
    for pid in pids:
        role = process_role(pid, title_prefix)
        if role is None:
            role, unnamed = f"process-{unnamed}", unnamed + 1
        labelled.append((pid, role))
    return labelled


class _TokenizerInfo:
    """What the host reports in hello and the scheduler needs: vLLM's own tokenizer."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        self._tokenizer = tokenizer
        self.vocab_size = vocab_size
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos_token_id = -1 if eos is None else int(eos)
        self.name = f"hf:{type(tokenizer).__name__}"

    def encode(self, text: str) -> list:
        # As vLLM tokenizes a text prompt: special tokens (BOS) added.
        return list(self._tokenizer.encode(text))


# ---------------------------------------------------------------- events: loop thread → scheduler

@dataclass
class _Output:
    erid: str
    text: str
    token_ids: list
    finished: bool
    finish_reason: Optional[str]
    stop_reason: Any
    at: float


@dataclass
class _Failed:
    erid: str
    code: str
    message: str


@dataclass
class _EngineDead:
    message: str


class _EngineDied(Exception):
    pass


def _generate_failure(erid: str, exc: Exception, request_errors: tuple) -> _Failed:
    """A request that generate() raised for: bad_request when vLLM refused it (a request error raised as
    is, or one that generate() wrapped in EngineGenerateError, as it does with a ValueError), else
    engine_error naming the cause."""
    cause = exc if isinstance(exc, request_errors) else exc.__cause__ or exc
    if isinstance(cause, request_errors):
        return _Failed(erid, ErrorCode.BAD_REQUEST, f"vLLM refused the request: {cause}")
    log.error("request %s failed in vLLM: %r", erid, cause)
    return _Failed(erid, ErrorCode.ENGINE_ERROR, f"vLLM failed the request: {type(cause).__name__}: {cause}")


# ---------------------------------------------------------------- the engine (AsyncLLM + its loop)

class VllmRuntime:
    """BackendPlan.runtime of the vllm backend: what the host builds instead of a core pipeline."""

    def __init__(self, settings):
        self.settings = settings

    def create(self, plan) -> "VllmEngine":
        return VllmEngine(self.settings, plan)

    @property
    def scheduler_class(self):
        return VllmScheduler


class VllmEngine:
    """Offers the host what a Pipeline offers (start, warm_up, control, pids, stop) for AsyncLLM."""

    def __init__(self, settings, plan):
        self._settings = settings
        self._plan = plan
        self._loop = asyncio.new_event_loop()
        self._thread: Optional[threading.Thread] = None
        self._v: Optional[SimpleNamespace] = None
        self._llm = None
        self._tasks: dict = {}  # engine request id -> asyncio.Task (loop thread only)
        self._known: list = []  # (pid, start ticks, role) of the processes vLLM started
        self._report: dict = {}
        self._sleep_mode = False
        self._parallel: dict = {}  # vLLM's parallel sizes above 1, by name
        self._communicators_prepared = False  # checkpoint_prepare() done, checkpoint_restore() not yet
        self._stopped = False
        self._canaries = 0  # canary requests sent, for their ids
        self.events = None  # set by the scheduler: a thread-safe callable taking one event

    # ------------------------------------------------------------ startup

    def start(self, phases: dict) -> list:
        ipc_dir = _set_ipc_directory(self._settings.run_dir)
        if ipc_dir:
            log.info("vLLM's ipc sockets in %s", ipc_dir)
        with _timed(phases, "import_backend"):
            self._v = _import_vllm()
        log.info("vLLM %s; engine args %s; sleep level %d", self._v.version,
                 self._settings.engine_args, self._settings.sleep_level)
        self._thread = threading.Thread(target=self._run_loop, name="vllm-loop", daemon=True)
        self._thread.start()
        with _timed(phases, "engine"):  # vLLM's EngineCore: weights, memory profile, KV cache, graphs
            self._llm = self._call(self._build())
        self._known = [(pid, _process_start_ticks(pid), role) for pid, role in self.roles]
        self._call(self._describe())
        return [self._report]

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro, timeout: Optional[float] = None):
        """Run a coroutine on the loop thread and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _build(self):
        v = self._v
        args = dict(self._settings.engine_args)
        if args.get("enable_sleep_mode") and not self._sleep_mode_available():
            log.warning("vLLM's platform (%s) has no sleep mode: the engine starts without it, and "
                        "prepare_checkpoint will refuse (it could not release the KV cache)",
                        getattr(v.platform, "device_type", "?"))
            args["enable_sleep_mode"] = False
        if dataclasses.is_dataclass(v.AsyncEngineArgs):
            known = {f.name for f in dataclasses.fields(v.AsyncEngineArgs)}
            unknown = sorted(set(args) - known)
            if unknown:
                raise StartupError(FailureCode.BAD_ENGINE_ARGS,
                                   f"unknown engine arg(s) {', '.join(unknown)}: not fields of vLLM "
                                   f"{v.version}'s AsyncEngineArgs (nor this backend's sleep_level)")
        try:
            engine_args = v.AsyncEngineArgs(**args)
        except (TypeError, ValueError) as exc:
            raise StartupError(FailureCode.BAD_ENGINE_ARGS, f"AsyncEngineArgs: {exc}")
        # from_engine_args is create_engine_config + from_vllm_config; split, so that a model that
        # cannot be found or a bad value is told apart from a failure of the engine itself.
        try:
            vllm_config = engine_args.create_engine_config(usage_context=v.UsageContext.ENGINE_CONTEXT)
        except OSError as exc:  # transformers / huggingface_hub: no such model, no network
            raise StartupError(FailureCode.MODEL_NOT_FOUND, f"vLLM cannot load model "
                               f"{self._settings.model!r}: {type(exc).__name__}: {exc}")
        except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise StartupError(FailureCode.BAD_ENGINE_ARGS, f"vLLM refused the engine args: {exc}")
        self._sleep_mode = bool(vllm_config.model_config.enable_sleep_mode)
        parallel = vllm_config.parallel_config
        self._parallel = {name: size for name in _PARALLEL_SIZES
                          if (size := int(getattr(parallel, name, 1) or 1)) > 1}
        return v.AsyncLLM.from_vllm_config(vllm_config, usage_context=v.UsageContext.ENGINE_CONTEXT,
                                           disable_log_stats=engine_args.disable_log_stats)

    def _sleep_mode_available(self) -> bool:
        probe = getattr(self._v.platform, "is_sleep_mode_available", None)
        try:
            return True if probe is None else bool(probe())
        except Exception:
            return True  # let vLLM itself say what is wrong

    async def _describe(self) -> None:
        llm, plan = self._llm, self._plan
        config = llm.vllm_config
        model_config = config.model_config
        tokenizer = await _maybe_await(llm.get_tokenizer())  # async before vLLM 0.11 or so
        plan.tokenizer = _TokenizerInfo(tokenizer, int(model_config.get_vocab_size()))
        plan.max_model_len = int(model_config.max_model_len)
        plan.max_num_seqs = int(config.scheduler_config.max_num_seqs)
        plan.max_batched_tokens = int(getattr(config.scheduler_config, "max_num_batched_tokens", 0) or 0)
        plan.config_hash = str(config.compute_hash())
        plan.vllm_version = self._v.version
        device_type = getattr(getattr(config, "device_config", None), "device_type", None) or \
            getattr(self._v.platform, "device_type", "unknown")
        device = str(device_type)
        if device == "cuda":
            with contextlib.suppress(Exception):
                device = f"cuda:0 ({self._v.platform.get_device_name(0)})"
        self._report = {
            "device": device, "dtype": str(model_config.dtype).replace("torch.", ""),
            "host_memory_bytes": 0, "gpu_memory_bytes": _gpu_memory_bytes(self.pids),
            "max_num_seqs": plan.max_num_seqs, "phases": {}}
        log.info("vLLM engine ready: config hash %s, device %s, dtype %s, max_model_len %d, "
                 "max_num_seqs %d, sleep mode %s, parallel sizes %s, processes %s", plan.config_hash,
                 device, self._report["dtype"], plan.max_model_len, plan.max_num_seqs,
                 self._sleep_mode, self._parallel or "1", self.roles)

    def warm_up(self, phases: dict) -> None:
        with _timed(phases, "warmup"):
            try:
                self._call(self._warm_up(), _CALL_TIMEOUT_S)
            except Exception as exc:
                raise StartupError(FailureCode.STARTUP_FAILED,
                                   f"warm-up failed: {type(exc).__name__}: {exc}") from exc
        if self._settings.sleep_level == 2 and self._sleep_mode:
            with _timed(phases, "rehearsal"):
                self._rehearse()

    def _rehearse(self) -> None:
        """What prepare and resume do at sleep level 2, once before serving, compared by the canary: weights
        that reload_weights does not bring back as they were fail the start, not a restore."""
        try:
            before = self.canary()
            self.control("release")
            self.control("reacquire")
            after = self.canary()
        except Exception as exc:
            raise StartupError(FailureCode.STARTUP_FAILED, f"the sleep level 2 rehearsal (sleep, wake, "
                               f"reload_weights, canary) failed: {type(exc).__name__}: {exc}") from exc
        problem = canary.mismatch(before, after)
        if problem is not None:
            raise StartupError(FailureCode.STARTUP_FAILED,
                               f"the sleep level 2 rehearsal changed the canary ({problem}): vLLM's "
                               "reload_weights does not bring this model back as it was; use sleep_level 1")
        log.info("sleep level 2 rehearsal: canary unchanged (%s)", after)

    def canary(self) -> canary.Canary:
        """The canary through AsyncLLM (vllm/snapshot/server.py run_engine_canary, with two tokens)."""
        try:
            return self._call(self._canary(), _CALL_TIMEOUT_S)
        except canary.CanaryFailed:
            raise
        except Exception as exc:
            reason = self.dead_reason()
            if reason:
                raise _EngineDied(reason) from exc
            raise canary.CanaryFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _canary(self) -> canary.Canary:
        v = self._v
        self._canaries += 1
        params = v.SamplingParams(max_tokens=canary.MAX_TOKENS, min_tokens=canary.MAX_TOKENS, ignore_eos=True,
                                  temperature=0.0, seed=0, logprobs=0,
                                  output_kind=v.RequestOutputKind.FINAL_ONLY)
        final = None
        async for out in self._llm.generate(canary.PROMPT, params, f"criucheckpoint-canary-{self._canaries}"):
            final = out
        if final is None:
            raise canary.CanaryFailed("vLLM returned no output for the canary")
        c = final.outputs[0]
        try:  # logprobs=0: each position holds the sampled token's Logprob
            logprobs = [position[token].logprob for token, position in zip(c.token_ids, c.logprobs)]
        except (TypeError, KeyError, AttributeError) as exc:
            raise canary.CanaryFailed(f"vLLM returned no logprob for the canary's tokens: {exc!r}") from exc
        return canary.Canary.measured(canary.PROMPT, list(c.token_ids), logprobs)

    async def _warm_up(self) -> None:
        v = self._v
        params = v.SamplingParams(max_tokens=2, temperature=0.0, output_kind=v.RequestOutputKind.DELTA)
        async for _ in self._llm.generate(_WARMUP_PROMPT, params, "criucheckpoint-warmup"):
            pass

    # ------------------------------------------------------------ what the host asks (Pipeline's calls)

    @property
    def pids(self) -> list:
        """vLLM's processes (EngineCore, its workers, multiprocessing helpers), as they are now."""
        return inventory.descendants(os.getpid())

    @property
    def roles(self) -> list:
        """(pid, role) of vLLM's processes, as they are now: by the titles vLLM gives them."""
        return label_processes(self.pids, os.environ.get("VLLM_PROCESS_NAME_PREFIX", "VLLM"))

    def checkpoint_refusal(self) -> Optional[str]:
        """Why this engine cannot be checkpointed at all, or None. An engine spanning several GPUs holds
        NCCL communicators, and vLLM's process-checkpoint hooks leave those live (they handle FlashInfer
        all-reduce workspaces and all-to-all managers only): a dump would carry NCCL state that no restore
        brings back. Asked before anything is drained or released, so a refused engine serves on."""
        if not self._parallel:
            return None
        sizes = ", ".join(f"{name} {size}" for name, size in self._parallel.items())
        return (f"this vLLM engine spans several GPUs ({sizes}); vLLM's process-checkpoint hooks do not "
                "prepare its NCCL communicators, so a checkpoint of it could not be restored. Only an "
                "engine on one GPU can be checkpointed")

    def control(self, command: str, weight_holder: Optional[str] = None) -> list:
        if weight_holder is not None:  # vLLM reloads its own weights (sleep_level 2)
            log.warning("a vllm engine takes no weights from a weight holder; ignoring %s", weight_holder)
        if command == "release":
            phases = self._call(self._release(), _CALL_TIMEOUT_S)
        elif command == "reacquire":
            phases = self._call(self._reacquire(), _CALL_TIMEOUT_S)
        else:
            raise ValueError(f"unknown control command {command!r}")
        # What vLLM's processes hold on GPUs now (NVML; 0 without it). Host memory is not measured:
        # after a level-1 sleep it holds the weights, in the process that owned them on the GPU.
        self._report["gpu_memory_bytes"] = _gpu_memory_bytes(self.pids)
        return [{**self._report, "phases": phases}]

    async def _release(self) -> dict:
        """vLLM's checkpoint order (docs/vllm.md): the communicators are prepared while the engine is awake
        and idle (drained, and no request is admitted while preparing), then it sleeps."""
        llm, level = self._llm, self._settings.sleep_level
        if not self._sleep_mode:
            raise RuntimeError("vLLM's sleep mode is off (engine arg enable_sleep_mode=false, or a "
                               "platform without it), so the KV cache cannot be released")
        phases: dict = {}
        with _timed(phases, "reset_prefix_cache"):
            await llm.reset_prefix_cache()
        if hasattr(llm, "checkpoint_prepare"):  # vLLM's process-checkpoint hooks, since July 2026
            with _timed(phases, "checkpoint_prepare"):
                self._communicators_prepared = True  # a hook that fails half-way is undone all the same
                await llm.checkpoint_prepare()
        with _timed(phases, "sleep"):
            await llm.sleep(level)
        if not await llm.is_sleeping():
            raise RuntimeError(f"vLLM reports it is not asleep after sleep(level={level})")
        log.info("vLLM asleep (level %d): %s", level, phases)
        return phases

    async def _reacquire(self) -> dict:
        llm = self._llm
        phases: dict = {}
        if self._settings.sleep_level == 1:
            with _timed(phases, "wake_up"):
                await llm.wake_up()
        else:  # level 2 discarded the weights: reallocate, reload from the model files, then the cache
            with _timed(phases, "wake_up_weights"):
                await llm.wake_up(tags=["weights"])
            with _timed(phases, "reload_weights"):
                await llm.collective_rpc("reload_weights")
            with _timed(phases, "wake_up_kv_cache"):
                await llm.wake_up(tags=["kv_cache"])
        if self._communicators_prepared:
            with _timed(phases, "checkpoint_restore"):
                await self._restore_communicators()
        if await llm.is_sleeping():
            raise RuntimeError("vLLM still reports it is asleep after wake_up")
        log.info("vLLM awake: %s", phases)
        return phases

    async def _restore_communicators(self) -> None:
        await self._llm.checkpoint_restore()
        self._communicators_prepared = False

    def recover(self) -> Optional[str]:
        """After a failed release: wake vLLM if it sleeps (sleep pauses its scheduler first), then restore
        its communicators if they were prepared. None when it serves again, else why not."""
        async def wake():
            if await self._llm.is_sleeping():
                await self._llm.wake_up()
            if self._communicators_prepared:
                await self._restore_communicators()
            if await self._llm.is_sleeping():
                raise RuntimeError("still asleep after wake_up")
        try:
            self._call(wake(), _CALL_TIMEOUT_S)
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def dead_reason(self) -> Optional[str]:
        if self._thread is not None and not self._thread.is_alive():
            return "the vLLM event-loop thread stopped"
        if self._llm is not None and self._llm.errored:
            return self.death_report()
        return None

    def death_report(self) -> str:
        gone = [f"{role} (pid {pid})" for pid, ticks, role in self._known
                if _process_start_ticks(pid) != ticks]
        return ("vLLM's engine core died (EngineDeadError)"
                + (f": {', '.join(gone)} exited" if gone else ""))

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Shut vLLM down and end what it started; callable from any thread but the loop's."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None and self._thread.is_alive():
            if self._llm is not None:
                try:
                    self._call(self._shutdown(), timeout)
                except Exception as exc:
                    log.warning("vLLM shutdown: %s: %s", type(exc).__name__, exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._end_leftovers()

    async def _shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        self._llm.shutdown()

    def _end_leftovers(self) -> None:
        """vLLM reaps its processes on shutdown; any it left (same pid, same start time) get SIGTERM,
        then SIGKILL. With this backend every child of the frontend is vLLM's. multiprocessing's resource
        tracker is left alone: it ignores SIGTERM, unlinks what vLLM's processes leaked, and ends by itself
        when the frontend exits."""
        candidates = {pid: ticks for pid, ticks, role in self._known if role != RESOURCE_TRACKER}
        for pid, role in self.roles:
            if role != RESOURCE_TRACKER:
                candidates.setdefault(pid, _process_start_ticks(pid))
        alive = [(pid, t) for pid, t in candidates.items()
                 if t is not None and _process_start_ticks(pid) == t]
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if not alive:
                return
            log.warning("ending vLLM process(es) left behind with %s: %s", sig.name, [p for p, _ in alive])
            for pid, _ in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while alive and time.monotonic() < deadline:
                time.sleep(0.05)
                alive = [(pid, t) for pid, t in alive if _process_start_ticks(pid) == t]

    # ------------------------------------------------------------ requests (scheduler thread → loop)

    def submit(self, erid: str, prompt_ids: list, params: Any) -> None:
        self._loop.call_soon_threadsafe(self._start_request, erid, prompt_ids, params)

    def cancel(self, erid: str) -> None:
        self._loop.call_soon_threadsafe(self._cancel_request, erid)

    def _start_request(self, erid: str, prompt_ids: list, params: Any) -> None:
        task = self._loop.create_task(self._generate(erid, prompt_ids, params))
        self._tasks[erid] = task
        task.add_done_callback(lambda _t: self._tasks.pop(erid, None))

    def _cancel_request(self, erid: str) -> None:
        task = self._tasks.get(erid)
        if task is not None:
            task.cancel()  # generate() then aborts the request in vLLM

    async def _generate(self, erid: str, prompt_ids: list, params: Any) -> None:
        v, post = self._v, self.events
        try:
            async for out in self._llm.generate({"prompt_token_ids": prompt_ids}, params, erid):
                c = out.outputs[0]
                post(_Output(erid, c.text, list(c.token_ids), bool(out.finished), c.finish_reason,
                             c.stop_reason, time.monotonic()))
                if out.finished:
                    return
            post(_Failed(erid, ErrorCode.ENGINE_ERROR, "vLLM ended the request without a final output"))
        except asyncio.CancelledError:
            return  # aborted: the scheduler has answered already
        except v.EngineDeadError:
            post(_EngineDead(self.death_report()))
        except Exception as exc:
            post(_generate_failure(erid, exc, v.request_errors))


# ---------------------------------------------------------------- the scheduler thread

@dataclass
class _Request:
    erid: str  # the id vLLM knows the request by (unique in this engine)
    identity: bytes
    request_id: str
    args: GenerateArgs
    prompt_ids: list
    arrival: float
    text: str = ""
    token_ids: list = field(default_factory=list)
    unstreamed_ids: list = field(default_factory=list)
    first_token_at: Optional[float] = None


class VllmScheduler(RequestLoop):
    """The protocol's compute-loop side for vLLM (scheduler.Scheduler's counterpart): same ops, same
    replies, same states; vLLM does the batching."""

    def __init__(self, engine: VllmEngine, plan, status, lifecycle):
        super().__init__(status, lifecycle)
        self._engine = engine
        engine.events = self.inbox.put
        self._v = engine._v
        self._tokenizer = plan.tokenizer
        self._max_model_len = plan.max_model_len
        self._by_erid: dict = {}  # erid -> _Request
        self._next = 0
        self._last_check = time.monotonic()

    # ------------------------------------------------------------ loop

    def run(self) -> int:
        self._outbox = self._lifecycle.connect_outbox()
        try:
            while self._exit_code is None:
                timeout = _IDLE_CHECK_S
                if self._prepare is not None:
                    timeout = max(0.0, min(timeout, self._prepare.deadline - time.monotonic()))
                try:
                    self._handle(self.inbox.get(timeout=timeout))
                except queue.Empty:
                    pass
                if self._exit_code is None and time.monotonic() - self._last_check >= _IDLE_CHECK_S:
                    self._last_check = time.monotonic()
                    reason = self._engine.dead_reason()
                    if reason:
                        raise _EngineDied(reason)
                if self._prepare is not None and self._exit_code is None:
                    self._advance_prepare()
        except _EngineDied as exc:
            self._fail_everything(str(exc))
            self._exit_code = EXIT_CORE_DIED
        finally:
            self._outbox.close_link()
        return self._exit_code

    def _handle(self, item: Any) -> None:
        if isinstance(item, _Output):
            self._on_output(item)
        elif isinstance(item, _Failed):
            request = self._by_erid.get(item.erid)
            if request is not None:
                self._drop(request)
                self._send_error(request.identity, request.request_id, item.code, item.message)
        elif isinstance(item, _EngineDead):
            raise _EngineDied(item.message)
        else:
            super()._handle(item)

    # ------------------------------------------------------------ generate

    def _on_generate(self, item: Incoming) -> None:
        rid, a = item.request.id, item.request.args
        if self._refuses(item):
            return
        key = (item.identity, rid)
        try:
            prompt_ids = self._tokenizer.encode(a.prompt)
        except Exception as exc:
            self._send_error(item.identity, rid, ErrorCode.ENGINE_ERROR,
                             f"vLLM's tokenizer failed on the prompt: {type(exc).__name__}: {exc}")
            return
        if len(prompt_ids) + a.max_tokens > self._max_model_len:
            self._send_error(item.identity, rid, ErrorCode.PROMPT_TOO_LONG,
                             f"prompt tokens ({len(prompt_ids)}) + max_tokens ({a.max_tokens}) "
                             f"exceed max_model_len ({self._max_model_len})")
            return
        v = self._v
        try:
            params = v.SamplingParams(
                max_tokens=a.max_tokens, temperature=a.temperature, top_p=a.top_p, seed=a.seed,
                stop=list(a.stop), ignore_eos=a.ignore_eos, output_kind=v.RequestOutputKind.DELTA)
        except v.client_errors as exc:
            self._send_error(item.identity, rid, ErrorCode.BAD_REQUEST,
                             f"vLLM refused the sampling parameters: {exc}")
            return
        request = _Request(f"cc-{self._next}", item.identity, rid, a, prompt_ids, item.arrival)
        self._next += 1
        self._by_key[key] = self._by_erid[request.erid] = request
        self._status.in_flight = len(self._by_key)
        self._engine.submit(request.erid, prompt_ids, params)

    def _on_output(self, out: _Output) -> None:
        request = self._by_erid.get(out.erid)
        if request is None:  # finished or aborted here already
            return
        self._status.steps += 1
        if out.token_ids and request.first_token_at is None:
            request.first_token_at = out.at
        request.text += out.text
        request.token_ids.extend(out.token_ids)
        request.unstreamed_ids.extend(out.token_ids)
        if not out.finished:
            if request.args.stream and out.text:
                self._send_chunk(request, out.text)
            return
        reason = out.finish_reason
        eos = self._tokenizer.eos_token_id
        last = request.token_ids[-1] if request.token_ids else None
        if not request.args.ignore_eos and last is not None and reason in ("stop", "length") and (
                (last == eos and out.stop_reason is None) or last == out.stop_reason):
            # The end-of-sequence (or a stop token) that ended the request is not part of the result.
            request.token_ids.pop()
            if request.unstreamed_ids:
                request.unstreamed_ids.pop()
            reason = "stop"
        if reason not in ("stop", "length", "abort"):
            self._drop(request)
            self._send_error(request.identity, request.request_id, ErrorCode.ENGINE_ERROR,
                             f"vLLM finished the request with reason {reason!r}")
            return
        if request.args.stream and (out.text or request.unstreamed_ids):
            self._send_chunk(request, out.text)
        self._finish(request, reason)

    def _finish(self, request: _Request, reason: str) -> None:
        now = time.monotonic()
        self._drop(request)
        self._send_final(request.identity, request.request_id, protocol.GenerateResult(
            text=request.text, token_ids=list(request.token_ids), finish_reason=reason,
            prompt_tokens=len(request.prompt_ids), completion_tokens=len(request.token_ids),
            ttft_s=0.0 if request.first_token_at is None else request.first_token_at - request.arrival,
            duration_s=now - request.arrival))

    def _abort(self, request: _Request) -> None:
        """End a request now (the reply goes out at once); vLLM aborts it when its task is cancelled."""
        self._engine.cancel(request.erid)
        if request.args.stream and request.unstreamed_ids:
            self._send_chunk(request, "")
        self._finish(request, "abort")

    def _drop(self, request: _Request) -> None:
        self._by_key.pop((request.identity, request.request_id), None)
        self._by_erid.pop(request.erid, None)
        self._status.in_flight = len(self._by_key)

    # ------------------------------------------------------------ prepare (abort and shutdown: RequestLoop)

    def _checkpoint_refusal(self) -> Optional[str]:
        return self._engine.checkpoint_refusal()

    def _advance_prepare(self) -> None:
        if not self._drained():
            return
        pending = self._prepare
        if not self._answer_canary(pending):
            return
        started = time.monotonic()
        try:
            reports = [] if pending.keep_caches else self._engine.control("release")
        except Exception as exc:
            reason = self._engine.dead_reason()
            if reason:
                raise _EngineDied(reason)
            message = f"{type(exc).__name__}: {exc}"
            log.error("prepare_checkpoint failed: %s", message)
            problem = self._engine.recover()
            if problem is not None:
                raise RuntimeError(f"prepare_checkpoint failed ({message}) and vLLM could not be "
                                   f"woken again ({problem})") from exc
            self._prepare = None
            self._status.state = READY
            self._send_error(pending.identity, pending.request_id, ErrorCode.ENGINE_ERROR,
                             f"prepare_checkpoint failed: {message}; the engine serves on")
            return
        self._prepare = None
        fifo = self._lifecycle.create_resume_fifo()
        gpu_bytes = sum(int(r.get("gpu_memory_bytes", 0)) for r in reports)
        log.info("prepared for checkpoint in %.3fs; still held: %d bytes on GPUs", time.monotonic() - started,
                 gpu_bytes)
        self._suspend(pending, self._prepared(pending, fifo, gpu_bytes))
