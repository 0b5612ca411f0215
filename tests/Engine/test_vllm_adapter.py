"""The vllm adapter's pieces that need no engine process: which NVML binding it reads GPU memory with, how it
labels vLLM's processes, how a failed generate() becomes a reply, and the order of vLLM's calls around a
checkpoint with and without vLLM's process-checkpoint hooks. The behaviour through the engine host and the
vLLM test double is in test_vllm_backend.py."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import types

import pytest

from conftest import VLLM_DOUBLE, wait_for
from engine_host.backends import vllm_engine
from engine_host.backends.vllm_backend import VllmSettings
from engine_host.protocol import ErrorCode


# ---------------------------------------------------------------- NVML


class _FakeNvml(types.ModuleType):
    """An NVML binding with one GPU whose compute processes hold `used` bytes each."""

    def __init__(self, name: str, used: dict):
        super().__init__(name)
        self.used = used
        self.calls: list = []

    def nvmlInit(self):
        self.calls.append("init")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=b) for pid, b in self.used.items()]


def _bindings(monkeypatch, vendored, standalone) -> None:
    """Puts a binding (or None: it does not import) at vLLM's vendored path and at nvidia-ml-py's."""
    monkeypatch.setitem(sys.modules, "vllm.third_party.pynvml", vendored)
    monkeypatch.setitem(sys.modules, "pynvml", standalone)


def test_gpu_memory_is_read_through_vllms_vendored_nvml_when_pynvml_is_missing(monkeypatch):
    vendored = _FakeNvml("vllm.third_party.pynvml", {10: 3 << 30, 11: 1 << 30, 99: 7 << 30})
    _bindings(monkeypatch, vendored, None)
    assert vllm_engine._gpu_memory_bytes([10, 11]) == 4 << 30
    assert vendored.calls == ["init", "shutdown"]


def test_vllms_vendored_nvml_is_preferred_to_pynvml(monkeypatch):
    vendored = _FakeNvml("vllm.third_party.pynvml", {10: 2 << 30})
    standalone = _FakeNvml("pynvml", {10: 5 << 30})
    _bindings(monkeypatch, vendored, standalone)
    assert vllm_engine._gpu_memory_bytes([10]) == 2 << 30 and standalone.calls == []


def test_pynvml_serves_an_older_vllm_without_the_vendored_copy(monkeypatch):
    standalone = _FakeNvml("pynvml", {10: 5 << 30})
    _bindings(monkeypatch, None, standalone)
    assert vllm_engine._gpu_memory_bytes([10]) == 5 << 30


def test_without_an_nvml_binding_gpu_memory_reads_zero(monkeypatch):
    _bindings(monkeypatch, None, None)
    assert vllm_engine._gpu_memory_bytes([10]) == 0


def test_an_nvml_that_fails_reads_zero(monkeypatch):
    failing = _FakeNvml("vllm.third_party.pynvml", {})
    failing.nvmlInit = lambda: (_ for _ in ()).throw(OSError("NVML Shared Library Not Found"))
    _bindings(monkeypatch, failing, None)
    assert vllm_engine._gpu_memory_bytes([10]) == 0


# ---------------------------------------------------------------- labels


@pytest.fixture
def processes():
    """start(code) -> pid of a Python process running code; all are ended afterwards."""
    started = []

    def start(code: str) -> int:
        proc = subprocess.Popen([sys.executable, "-c", code])
        started.append(proc)
        return proc.pid

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _titled(title: str) -> str:
    return f"import setproctitle, time; setproctitle.setproctitle({title!r}); time.sleep(60)"


def test_processes_are_labelled_by_the_titles_vllm_gives_them(processes):
    core = processes(_titled("VLLM::EngineCore"))
    worker = processes(_titled("VLLM::Worker_TP1"))
    tracker = processes("from multiprocessing.resource_tracker import main; import time; time.sleep(60)")
    other = processes("import time; time.sleep(60)")
    other_prefix = processes(_titled("MINE::EngineCore"))
    wait_for(lambda: all(vllm_engine.process_role(p, "VLLM") for p in (core, worker))
             and vllm_engine.process_role(other_prefix, "MINE"), what="the titles")
    assert vllm_engine.label_processes([core, worker, tracker, other, other_prefix], "VLLM") == [
        (core, "EngineCore"), (worker, "Worker_TP1"), (tracker, "resource_tracker"), (other, "process-0"),
        (other_prefix, "process-1")]
    assert vllm_engine.process_role(other_prefix, "MINE") == "EngineCore"


def test_a_process_that_is_gone_has_no_role():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert vllm_engine.process_role(proc.pid, "VLLM") is None


# ---------------------------------------------------------------- errors of generate()


@pytest.fixture(scope="module")
def double_exceptions():
    """The double's exception classes, as vLLM defines them; the double leaves sys.path afterwards."""
    sys.path.insert(0, VLLM_DOUBLE)
    try:
        from vllm.exceptions import VLLMClientError, VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

        yield types.SimpleNamespace(request_errors=(VLLMClientError, ValueError),
                                    VLLMValidationError=VLLMValidationError,
                                    EngineGenerateError=EngineGenerateError,
                                    EngineDeadError=EngineDeadError)
    finally:
        sys.path.remove(VLLM_DOUBLE)
        for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
            del sys.modules[name]


def _wrapped(outer: Exception, cause: Exception) -> Exception:
    """What AsyncLLM.generate() raises for an unexpected error: `raise EngineGenerateError() from e`."""
    try:
        raise outer from cause
    except Exception as exc:
        return exc


def test_a_value_error_raised_inside_generate_is_a_bad_request(double_exceptions):
    x = double_exceptions
    exc = _wrapped(x.EngineGenerateError(),
                   ValueError("sampling distribution replay requires temperature > 0"))
    failed = vllm_engine._generate_failure("cc-1", exc, x.request_errors)
    assert failed.code == ErrorCode.BAD_REQUEST and "requires temperature > 0" in failed.message


def test_a_validation_error_generate_raises_as_is_is_a_bad_request(double_exceptions):
    x = double_exceptions
    refusal = x.VLLMValidationError("The decoder prompt cannot be empty")
    failed = vllm_engine._generate_failure("cc-1", refusal, x.request_errors)
    assert failed.code == ErrorCode.BAD_REQUEST and "cannot be empty" in failed.message


def test_any_other_failure_inside_generate_is_an_engine_error(double_exceptions):
    x = double_exceptions
    exc = _wrapped(x.EngineGenerateError(), RuntimeError("CUDA error: misaligned address"))
    failed = vllm_engine._generate_failure("cc-1", exc, x.request_errors)
    assert failed.code == ErrorCode.ENGINE_ERROR and "RuntimeError: CUDA error" in failed.message


def test_generate_posts_the_bad_request_of_a_wrapped_value_error(double_exceptions, engine_with):
    x = double_exceptions

    class Llm:
        async def generate(self, prompt, params, request_id):
            raise _wrapped(x.EngineGenerateError(), ValueError("bad value"))
            yield  # an async generator, as AsyncLLM.generate is

    engine = engine_with(Llm())
    engine._v = types.SimpleNamespace(EngineDeadError=x.EngineDeadError, request_errors=x.request_errors)
    posted = []
    engine.events = posted.append
    asyncio.run(engine._generate("cc-7", [1, 2], params=None))
    assert [(p.erid, p.code) for p in posted] == [("cc-7", ErrorCode.BAD_REQUEST)]


# ---------------------------------------------------------------- the order of vLLM's calls at a checkpoint


class _RecordingLlm:
    """AsyncLLM's checkpoint calls, recorded; hooks=False: a vLLM older than its process-checkpoint hooks."""

    def __init__(self, hooks: bool, fail: str = ""):
        self.calls: list = []
        self.sleeping = False
        self.fail = fail
        if hooks:
            self.checkpoint_prepare = lambda: self._record("checkpoint_prepare")
            self.checkpoint_restore = lambda: self._record("checkpoint_restore")

    async def _record(self, call: str):
        self.calls.append(call)
        if call == self.fail:
            raise RuntimeError(f"{call} failed")

    async def reset_prefix_cache(self):
        await self._record("reset_prefix_cache")

    async def sleep(self, level):
        self.sleeping = True  # vLLM pauses its scheduler before the executor sleeps
        await self._record(f"sleep({level})")

    async def wake_up(self, tags=None):
        await self._record("wake_up" if tags is None else f"wake_up({','.join(tags)})")
        self.sleeping = False

    async def collective_rpc(self, method):
        await self._record(method)

    async def is_sleeping(self):
        return self.sleeping


@pytest.fixture
def engine_with():
    """engine_with(llm, sleep_level=1) -> a VllmEngine driving llm (sleep mode on); their loops are closed
    afterwards."""
    engines = []

    def make(llm, sleep_level: int = 1) -> vllm_engine.VllmEngine:
        settings = VllmSettings(model="m", engine_args={}, sleep_level=sleep_level, run_dir="/nonexistent")
        engine = vllm_engine.VllmEngine(settings, plan=None)
        engine._llm, engine._sleep_mode = llm, True
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine._loop.close()


@pytest.mark.parametrize("level, wake", [(1, ["wake_up"]),
                                         (2, ["wake_up(weights)", "reload_weights", "wake_up(kv_cache)"])])
def test_the_communicators_are_prepared_before_sleep_and_restored_after_wake_up(engine_with, level, wake):
    llm = _RecordingLlm(hooks=True)
    engine = engine_with(llm, level)
    released = asyncio.run(engine._release())
    reacquired = asyncio.run(engine._reacquire())
    assert llm.calls == ["reset_prefix_cache", "checkpoint_prepare", f"sleep({level})", *wake,
                         "checkpoint_restore"]
    assert list(released) == ["reset_prefix_cache", "checkpoint_prepare", "sleep"]
    assert list(reacquired)[-1] == "checkpoint_restore"


def test_a_vllm_without_the_hooks_only_sleeps_and_wakes(engine_with):
    llm = _RecordingLlm(hooks=False)
    engine = engine_with(llm)
    asyncio.run(engine._release())
    asyncio.run(engine._reacquire())
    assert llm.calls == ["reset_prefix_cache", "sleep(1)", "wake_up"]


@pytest.mark.parametrize("fail, undo", [("sleep(1)", ["wake_up", "checkpoint_restore"]),
                                        ("checkpoint_prepare", ["checkpoint_restore"])])
def test_a_failed_release_is_undone_in_vllms_order(engine_with, fail, undo):
    llm = _RecordingLlm(hooks=True, fail=fail)
    engine = engine_with(llm)
    with pytest.raises(RuntimeError, match="failed"):
        asyncio.run(engine._release())
    # recover() runs on the engine's own event loop, as it does in the engine host.
    loop = threading.Thread(target=engine._run_loop, daemon=True)
    loop.start()
    try:
        assert engine.recover() is None
    finally:
        engine._loop.call_soon_threadsafe(engine._loop.stop)
        loop.join(5)
    assert llm.calls[llm.calls.index(fail) + 1:] == undo


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_a_process_that_became_a_zombie_counts_as_gone():
    assert vllm_engine._process_start_ticks(os.getpid()) is not None
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: _state(proc.pid) == "Z", what="the child to exit")
    assert vllm_engine._process_start_ticks(proc.pid) is None
    proc.wait()
