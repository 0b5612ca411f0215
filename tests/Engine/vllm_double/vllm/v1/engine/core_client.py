"""As vllm/v1/engine/core_client.py (MPClient, AsyncMPClient) with what it uses from vllm/v1/engine/utils.py
(CoreEngineProcManager, launch_core_engines).

The client binds its sockets on ipc paths under VLLM_RPC_BASE_PATH (vLLM: get_open_zmq_ipc_path): a ROUTER
for the engine's input, a PULL for its outputs and a ROUTER for the start-up handshake. It starts the
EngineCore with vLLM's multiprocessing context (VLLM_WORKER_MULTIPROC_METHOD), answers its HELLO with the
input and output addresses, and waits for its READY. Outputs are read on the asyncio loop (vLLM uses
zmq.asyncio the same way); a monitor thread watches the core's process sentinel and marks the engine dead
when it exits unasked, which fails every waiting output and utility call with EngineDeadError.
"""
import asyncio
import json
import logging
import multiprocessing.connection
import threading
from types import SimpleNamespace
from typing import Any

import zmq
import zmq.asyncio

from vllm.config import VllmConfig
from vllm.utils.network_utils import get_open_zmq_ipc_path, make_zmq_socket
from vllm.utils.system_utils import get_mp_context
from vllm.v1.engine.core import run_engine_core
from vllm.v1.engine.exceptions import EngineDeadError

logger = logging.getLogger(__name__)

VLLM_ENGINE_READY_TIMEOUT_S = 60.0
_SHUTDOWN_TIMEOUT_S = 5.0


class AsyncMPClient:
    """Starts the EngineCore process and talks to it over ZeroMQ ipc sockets."""

    def __init__(self, vllm_config: VllmConfig):
        self.resources = SimpleNamespace(engine_dead=False)
        self._shutting_down = False
        self._sync_ctx = zmq.Context(io_threads=2)
        self.ctx = zmq.asyncio.Context.shadow(self._sync_ctx.underlying)
        self.input_socket = make_zmq_socket(self.ctx, get_open_zmq_ipc_path(), zmq.ROUTER, bind=True)
        self.output_socket = make_zmq_socket(self.ctx, get_open_zmq_ipc_path(), zmq.PULL, bind=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outputs: asyncio.Queue | None = None
        self._output_task: asyncio.Task | None = None
        self._calls: dict = {}
        self._next_call = 0
        self.core_engine = (0).to_bytes(2, "little")
        parallel = vllm_config.parallel_config
        config = {"max_model_len": vllm_config.model_config.max_model_len,
                  "enable_sleep_mode": vllm_config.model_config.enable_sleep_mode,
                  "world_size": parallel.world_size,
                  "tensor_parallel_size": parallel.tensor_parallel_size,
                  "pipeline_parallel_size": parallel.pipeline_parallel_size,
                  "data_parallel_size": parallel.data_parallel_size}
        handshake_address = get_open_zmq_ipc_path()
        self.proc = get_mp_context().Process(
            target=run_engine_core, name="EngineCore",
            kwargs={"config": config, "handshake_address": handshake_address})
        try:
            with make_zmq_socket(self._sync_ctx, handshake_address, zmq.ROUTER, bind=True,
                                 linger=0) as handshake:
                self.proc.start()
                self._handshake(handshake)
            self._wait_for_input_socket()
        except BaseException:
            self._stop_core()
            self._close()
            raise
        self._monitor = threading.Thread(target=self._monitor_engine_core, name="MPClientEngineMonitor",
                                         daemon=True)
        self._monitor.start()

    @property
    def engine_pids(self) -> list:
        return [self.proc.pid]

    # ------------------------------------------------------------ start-up

    def _receive_handshake(self, handshake: zmq.Socket) -> tuple:
        """(identity, message) of the next handshake message; the core failing first is a start-up failure."""
        poller = zmq.Poller()
        poller.register(handshake, zmq.POLLIN)
        poller.register(self.proc.sentinel, zmq.POLLIN)
        ready = dict(poller.poll(VLLM_ENGINE_READY_TIMEOUT_S * 1000))
        if handshake not in ready:
            self._fail_start()
        identity, payload = handshake.recv_multipart()
        return identity, json.loads(payload)

    def _handshake(self, handshake: zmq.Socket) -> None:
        identity, hello = self._receive_handshake(handshake)
        assert hello["status"] == "HELLO", hello
        handshake.send_multipart([identity, json.dumps({
            "input": self.input_socket.getsockopt(zmq.LAST_ENDPOINT).decode(),
            "output": self.output_socket.getsockopt(zmq.LAST_ENDPOINT).decode()}).encode()])
        _, ready = self._receive_handshake(handshake)
        assert ready["status"] == "READY", ready

    def _wait_for_input_socket(self) -> None:
        """The core's first (empty) message on the input socket, which lets the ROUTER address it."""
        sync_input = zmq.Socket.shadow(self.input_socket.underlying)
        if not sync_input.poll(VLLM_ENGINE_READY_TIMEOUT_S * 1000):
            self._fail_start()
        identity, _ = sync_input.recv_multipart()
        assert identity == self.core_engine, identity

    def _fail_start(self):
        self.proc.join(_SHUTDOWN_TIMEOUT_S)
        raise RuntimeError("Engine core initialization failed. See root cause above. "
                           f"Failed core proc(s): {{'EngineCore': {self.proc.exitcode}}}")

    # ------------------------------------------------------------ liveness (monitor thread → event loop)

    def _monitor_engine_core(self) -> None:
        multiprocessing.connection.wait([self.proc.sentinel])
        if self._shutting_down:
            return
        self.proc.join()  # vLLM's monitor shuts the client down, which reaps the core
        self.resources.engine_dead = True
        logger.error("Engine core proc EngineCore died unexpectedly (exit code %s), shutting down client.",
                     self.proc.exitcode)
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._fail_waiters)
            except RuntimeError:  # the loop is closed: the client is shutting down
                pass

    def _fail_waiters(self) -> None:
        for future in self._calls.values():
            if not future.done():
                future.set_exception(EngineDeadError())
        self._calls.clear()
        self._outputs.put_nowait(EngineDeadError())

    # ------------------------------------------------------------ output socket (event loop)

    def _bind(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._outputs = asyncio.Queue()
        self._output_task = self._loop.create_task(self._process_outputs_socket())
        if self.resources.engine_dead:
            self._fail_waiters()

    async def _process_outputs_socket(self) -> None:
        while True:
            message = json.loads(await self.output_socket.recv())
            if message["type"] == "outputs":
                self._outputs.put_nowait(message["outputs"])
                continue
            future = self._calls.pop(message["call_id"], None)
            if future is not None and not future.done():
                if "failure" in message:
                    future.set_exception(Exception(message["failure"]))
                else:
                    future.set_result(message["result"])

    def _send(self, message: dict) -> None:
        if self.resources.engine_dead:
            raise EngineDeadError()
        self.input_socket.send_multipart([self.core_engine, json.dumps(message).encode()])

    # ------------------------------------------------------------ the calls AsyncLLM makes

    async def get_output_async(self) -> list:
        self._bind()
        outputs = await self._outputs.get()
        if isinstance(outputs, BaseException):
            raise outputs
        return outputs

    async def add_request_async(self, request: dict) -> None:
        self._bind()
        self._send({"type": "add", **request})

    async def abort_requests_async(self, request_ids: list) -> None:
        if request_ids and not self.resources.engine_dead:
            self._send({"type": "abort", "ids": list(request_ids)})

    async def call_utility_async(self, method: str, *args) -> Any:
        self._bind()
        if self.resources.engine_dead:
            raise EngineDeadError()
        future = self._loop.create_future()
        self._next_call += 1
        self._calls[self._next_call] = future
        self._send({"type": "utility", "call_id": self._next_call, "method": method, "args": list(args)})
        return await future

    def shutdown(self, timeout: float | None = None) -> None:
        """vLLM: CoreEngineProcManager.shutdown, then the sockets and the context."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self.proc.is_alive() and not self.resources.engine_dead:
            self.input_socket.send_multipart([self.core_engine, b'{"type": "shutdown"}'])
            self.proc.join(timeout or _SHUTDOWN_TIMEOUT_S)
        self._stop_core()
        self._close()

    def _stop_core(self) -> None:
        """SIGTERM, then SIGKILL, for a core that has not exited; reaps it."""
        if self.proc.pid is None:
            return
        for stop in (self.proc.terminate, self.proc.kill):
            if not self.proc.is_alive():
                break
            stop()
            self.proc.join(_SHUTDOWN_TIMEOUT_S)
        self.proc.join()

    def _close(self) -> None:
        if self._output_task is not None:
            self._output_task.cancel()
        self.input_socket.close(linger=0)
        self.output_socket.close(linger=0)
        self._sync_ctx.term()
