"""Fixtures that run real engine subprocesses and talk to them over a real pyzmq DEALER.

Every engine is started in its own session and stopped by PID in teardown (its process group and
each pid it reported), never by name.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Optional

import msgpack
import pytest
import zmq

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE_ROOT = os.path.join(REPO, "module", "EngineHost")
sys.path.insert(0, ENGINE_ROOT)  # unit tests import engine_host directly

from engine_host import curve, protocol  # noqa: E402

START_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 30.0

# Small and fast, with room for long generations (abort tests need them).
TINY_ARGS = ["--model", "tiny-4m", "--max-model-len", "4096"]
# The vllm backend against the vLLM test double (tests/Engine/vllm_double, a package named `vllm`).
VLLM_DOUBLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vllm_double")
VLLM_ENV = {"PYTHONPATH": VLLM_DOUBLE}
VLLM_MODEL = "double/byte-lm"
VLLM_ARGS = ["--backend", "vllm", "--model", VLLM_MODEL, "--max-model-len", "4096"]


class Client:
    """One DEALER connection; many requests may be in flight on it. keys: (server public, client public,
    client secret), Z85, as the engine's run directory holds them; None: no CURVE at all."""

    def __init__(self, context: zmq.Context, endpoint: str, keys: Optional[tuple],
                 send_timeout: float = REPLY_TIMEOUT_S):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # A DEALER without a connection blocks its sends; one refused by the engine's CURVE may never get one.
        self.socket.setsockopt(zmq.SNDTIMEO, int(send_timeout * 1000))
        if keys is not None:
            self.socket.curve_serverkey, self.socket.curve_publickey, self.socket.curve_secretkey = keys
        self.socket.connect(endpoint)
        self._backlog: list = []  # replies read while waiting for another request's

    def send(self, op: str, args: dict = None, request_id: str = None,
             v: int = protocol.PROTOCOL_VERSION) -> str:
        request_id = request_id or uuid.uuid4().hex[:12]
        self.send_raw(msgpack.packb({"v": v, "id": request_id, "op": op, "args": args or {}}))
        return request_id

    def send_raw(self, payload: bytes) -> None:
        try:
            self.socket.send_multipart([b"", payload])
        except zmq.Again:
            raise TimeoutError("no connection to send on: the engine refused it or is gone") from None

    def recv_any(self, timeout: float = REPLY_TIMEOUT_S) -> dict:
        if self._backlog:
            return self._backlog.pop(0)
        if not self.socket.poll(int(timeout * 1000)):
            raise TimeoutError(f"no reply within {timeout}s")
        frames = self.socket.recv_multipart()
        assert frames[0] == b"", frames
        return msgpack.unpackb(frames[1], raw=False)

    def replies(self, request_id: str, timeout: float = REPLY_TIMEOUT_S) -> list:
        """Every reply to request_id up to and including its final or error reply."""
        deadline = time.monotonic() + timeout
        got, others = [], []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"request {request_id} unfinished after {timeout}s: {got}")
                reply = self.recv_any(left)
                if reply.get("id") != request_id:
                    others.append(reply)
                    continue
                got.append(reply)
                if reply["kind"] in ("final", "error"):
                    return got
        finally:
            self._backlog.extend(others)

    def call(self, op: str, args: dict = None, timeout: float = REPLY_TIMEOUT_S, **kw) -> dict:
        return self.replies(self.send(op, args, **kw), timeout)[-1]

    def generate(self, prompt: str, **args) -> dict:
        return self.call("generate", {"prompt": prompt, **args})

    def close(self) -> None:
        self.socket.close(linger=0)


class Engine:
    def __init__(self, run_dir: str, args: list, context: zmq.Context, env: dict = None):
        self.run_dir = run_dir
        self.args = args
        self.context = context
        self.log_path = os.path.join(run_dir, "engine.log")
        os.makedirs(run_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine_host", "--run-dir", run_dir, *args],
            cwd=ENGINE_ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, env=None if env is None else {**os.environ, **env})
        self.pids = [self.proc.pid]
        self.ready: dict = {}
        self._clients: list = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.path("ready.json")):
                with open(self.path("ready.json")) as f:
                    self.ready = json.load(f)
                self.pids = sorted(set(self.pids) | {p["pid"] for p in self.ready["pids"]})
                return self.ready
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise TimeoutError(f"engine not ready after {timeout}s:\n{self.log()}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def link_keys(self) -> tuple:
        """The keys the engine lets in now, as its owner reads them from the run directory."""
        names = (curve.SERVER_PUBLIC, curve.CLIENT_PUBLIC, curve.CLIENT_SECRET)
        return tuple(read_key(self.path(name)) for name in names)

    def client(self) -> Client:
        """A client with the owner's keys."""
        return self.client_with(self.link_keys())

    def client_with(self, keys: Optional[tuple], send_timeout: float = REPLY_TIMEOUT_S) -> Client:
        c = Client(self.context, self.ready["endpoint"], keys, send_timeout)
        self._clients.append(c)
        return c

    def write_resume(self, **fields) -> None:
        with open(self.path("resume.fifo"), "w") as fifo:
            fifo.write(resume_message(self.run_dir, **fields))

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()[-6000:]

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.pids:
            if pid != self.proc.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait(10)
        self._log.close()


def read_key(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read().strip()


def resume_message(run_dir: str, **fields) -> str:
    """A resume line as the controller writes it, after what it does first: new client keys in the run
    directory, and a new server secret key for the message."""
    curve.issue_client_keys(run_dir)
    _, secret = zmq.curve_keypair()
    return json.dumps({**fields, "curve_secret_key": secret.decode()}) + "\n"


@pytest.fixture(scope="session")
def zmq_context():
    context = zmq.Context()
    yield context
    context.term()


@pytest.fixture
def start_engine(tmp_path, zmq_context):
    """start_engine(*args, wait=True, env=None) -> Engine; every engine started is stopped in teardown.
    env: variables added to this process's environment for the engine."""
    engines = []

    def start(*args, wait=True, run_dir=None, env=None):
        engine = Engine(run_dir or str(tmp_path / f"run{len(engines)}"), list(args), zmq_context, env)
        engines.append(engine)
        if wait:
            engine.wait_ready()
        return engine

    yield start
    for engine in engines:
        engine.stop()


@contextlib.contextmanager
def serving_engine(tmp_path_factory, name: str, args: list, context: zmq.Context, env: dict = None):
    """An engine that serves for a whole module's tests, stopped by PID afterwards."""
    engine = Engine(str(tmp_path_factory.mktemp(name)), args, context, env)
    try:
        engine.wait_ready()
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory, zmq_context):
    """One tiny engine for the tests of a module that leave it as they found it."""
    with serving_engine(tmp_path_factory, "shared", TINY_ARGS, zmq_context) as engine:
        yield engine


@pytest.fixture
def client(shared_engine) -> Client:
    c = shared_engine.client()
    yield c
    c.close()


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
