"""The double's EngineCore process (vLLM: vllm/v1/engine/core.py, EngineCore and EngineCoreProc).

As in vLLM, the client (core_client.py) starts the engine core with multiprocessing (spawn under the engine
host, so multiprocessing's resource_tracker runs beside it). The core titles itself VLLM::EngineCore, says
HELLO on the client's handshake socket and gets its addresses (ipc sockets under VLLM_RPC_BASE_PATH),
connects a DEALER to the client's input ROUTER and a PUSH to its output PULL, sends the empty message that
lets the ROUTER address it, and says READY on the handshake socket. Messages are JSON here (msgpack in
vLLM). With tensor_parallel_size x pipeline_parallel_size > 1 it starts that many worker processes, titled
as vLLM's MultiprocExecutor titles them (VLLM::Worker_TP0, ...); they hold nothing and only live as long as
the core.

Every running request advances one token per step (continuous batching), one step every VLLM_DOUBLE_STEP_S
seconds. Sleep follows vLLM's EngineCore.sleep: the scheduler is paused first (mode "abort" aborts what
runs), then the executor sleeps; wake_up resumes scheduling once no memory tag sleeps any more.

The process-checkpoint hooks (collective_rpc "checkpoint_prepare" / "checkpoint_restore", vLLM:
parallel_state.checkpoint_prepare_distributed_state) follow the order vLLM's hooks were written for
(vLLM PR 50036): checkpoint_prepare, sleep ... wake_up, checkpoint_restore. vLLM itself checks no order;
the double does, and raises RuntimeError for checkpoint_prepare while the executor sleeps and for
checkpoint_restore while it still sleeps. A second prepare, or a restore with nothing prepared, does
nothing, as FlashInfer's workspace hooks do. They touch no NCCL state: vLLM's hooks handle FlashInfer
all-reduce workspaces and all-to-all managers only, and the communicators of a world of one GPU do not
exist at all.
"""
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time

import zmq

from vllm.logprobs import Logprob
from vllm.tokenizers import EOS, OFFSET
from vllm.utils.network_utils import make_zmq_socket
from vllm.utils.system_utils import get_mp_context, set_process_title

_FNV_PRIME, _FNV_BASIS, _MASK = 16777619, 2166136261, 0xFFFFFFFF
_PRINTABLE = 95


def _context_hash(token_ids: list, temperature: float, seed: int) -> int:
    h = _FNV_BASIS
    for t in token_ids[-4:]:
        h = ((h ^ t) * _FNV_PRIME) & _MASK
    h = ((h ^ len(token_ids)) * _FNV_PRIME) & _MASK
    if temperature > 0:
        h = ((h ^ (seed & _MASK) ^ (seed >> 32 & _MASK)) * _FNV_PRIME) & _MASK
        h = ((h ^ int(temperature * 1000)) * _FNV_PRIME) & _MASK
    return h


def next_token(token_ids: list, temperature: float = 0.0, seed: int = 0) -> int:
    """The double's model: a deterministic function of the last tokens and the position.

    Greedy (temperature 0) ignores the seed; sampled output depends on the seed. Mostly printable
    ASCII bytes; now and then the EOS token.
    """
    h = _context_hash(token_ids, temperature, seed)
    if h % 67 == 0:
        return EOS
    return OFFSET + 32 + (h >> 7) % _PRINTABLE


def token_logprobs(token_ids: list, sampled: int, top: int) -> dict:
    """The logprobs of one position: the sampled token and the `top` most likely ones (vLLM's `logprobs`),
    as {token id: Logprob}. The greedy token ranks first; the values depend only on the context."""
    h = _context_hash(token_ids, 0.0, 0)
    greedy = next_token(token_ids)
    ranked = [greedy] + [t for t in (OFFSET + 32 + (h >> shift) % _PRINTABLE for shift in range(3, 30, 3))
                         if t != greedy]
    ranked = list(dict.fromkeys(ranked))
    base = -0.05 - (h % 997) / 10000.0

    def logprob(rank: int) -> float:
        return round(base - 0.75 * (rank - 1), 6)

    wanted = {t: Logprob(logprob(r), r) for r, t in enumerate(ranked[:top], start=1)}
    if sampled not in wanted:
        rank = ranked.index(sampled) + 1 if sampled in ranked else len(ranked) + 1
        wanted[sampled] = Logprob(logprob(rank), rank)
    return wanted


def reference_generate(prompt_ids: list, max_tokens: int, ignore_eos: bool = False,
                       temperature: float = 0.0, seed: int = 0, max_model_len: int = 4096) -> tuple:
    """What the core generates for one request alone: (token_ids, "stop" | "length")."""
    ids, out = list(prompt_ids), []
    while True:
        token = next_token(ids, temperature, seed)
        ids.append(token)
        out.append(token)
        if len(ids) >= max_model_len or len(out) >= max_tokens:
            return out, "length"
        if token == EOS and not ignore_eos:
            return out, "stop"


class _Request:
    def __init__(self, m: dict):
        self.id = m["id"]
        self.ids = list(m["prompt"])
        self.n_out = 0
        self.max_tokens = m["max_tokens"]
        self.temperature = m["temperature"]
        self.seed = m["seed"]
        self.ignore_eos = m["ignore_eos"]
        self.stop_token_ids = m["stop_token_ids"]
        self.logprobs = m["logprobs"]


class EngineCore:
    def __init__(self, config: dict, write):
        self.config = config
        self.write = write
        self.max_model_len = config["max_model_len"]
        self.sleep_mode = config["enable_sleep_mode"]
        self.world_size = config["world_size"]
        self.requests: dict = {}  # id -> _Request, in arrival order
        self.paused = False
        self.sleeping_tags: set = set()
        self.weights_valid = True
        self.communicators_prepared = False

    # ------------------------------------------------------------ requests and steps

    def add(self, m: dict) -> None:
        self.requests[m["id"]] = _Request(m)

    def abort(self, ids: list) -> None:
        for rid in ids:
            self.requests.pop(rid, None)

    def has_work(self) -> bool:
        return bool(self.requests) and not self.paused

    def step(self) -> None:
        outputs = []
        for req in list(self.requests.values()):
            context = list(req.ids)
            token = next_token(context, req.temperature, req.seed) if self.weights_valid else OFFSET
            req.ids.append(token)
            req.n_out += 1
            finish, stop_reason = None, None
            if len(req.ids) >= self.max_model_len or req.n_out >= req.max_tokens:
                finish = "length"
            elif not req.ignore_eos and token == EOS:
                finish = "stop"
            elif token in req.stop_token_ids:
                finish, stop_reason = "stop", token
            output = {"id": req.id, "new": [token], "finish": finish, "stop_reason": stop_reason}
            if req.logprobs is not None:
                position = token_logprobs(context, token, req.logprobs) if self.weights_valid else {
                    token: Logprob(0.0, 1)}
                output["logprobs"] = [[[t, p.logprob, p.rank] for t, p in position.items()]]
            outputs.append(output)
            if finish is not None:
                del self.requests[req.id]
        if outputs:
            self.write({"type": "outputs", "outputs": outputs})

    # ------------------------------------------------------------ utility methods (vLLM names)

    def sleep(self, level: int = 1, mode: str = "abort"):
        if mode not in ("keep", "abort", "wait"):
            raise ValueError(f"Invalid pause mode: {mode}")
        if mode == "abort" and self.requests:
            self.write({"type": "outputs", "outputs": [
                {"id": rid, "new": [], "finish": "abort", "stop_reason": None} for rid in self.requests]})
            self.requests.clear()
        self.paused = True
        if level < 1:
            return None
        if self.sleeping_tags:
            log("Executor is already sleeping.")
            return None
        error = os.environ.get("VLLM_DOUBLE_SLEEP_ERROR")
        if error:
            raise RuntimeError(error)
        self.sleeping_tags = {"weights", "kv_cache"}
        if level >= 2:
            self.weights_valid = False
        freed = "all weight and KV cache memory" if self.sleep_mode else "0.00 GiB (sleep mode is off)"
        log(f"It took 0.01 seconds to fall asleep (level {level}); freed {freed}.")
        return None

    def wake_up(self, tags=None):
        error = os.environ.get("VLLM_DOUBLE_WAKE_ERROR")
        if error:
            raise RuntimeError(error)
        if tags is not None and "scheduling" in tags:
            tags = [t for t in tags if t != "scheduling"]
        if tags is None or tags:
            if not self.sleeping_tags:
                log("Executor is not sleeping.")
            self.sleeping_tags -= set(tags or ("weights", "kv_cache"))
            log(f"wake_up {sorted(tags) if tags else 'all'}")
        if not self.sleeping_tags:
            self.paused = False
        return None

    def is_sleeping(self) -> bool:
        return self.paused or bool(self.sleeping_tags)

    def reset_prefix_cache(self, reset_running_requests: bool = False, reset_connector: bool = False) -> bool:
        return reset_running_requests or not self.requests

    def get_supported_tasks(self) -> list:
        return ["generate"]

    def collective_rpc(self, method: str, timeout=None, args=(), kwargs=None) -> list:
        if method == "reload_weights":
            if "weights" in self.sleeping_tags:
                raise RuntimeError("CUDA error: an illegal memory access was encountered "
                                   "(weights are asleep; wake_up(tags=['weights']) first)")
            # VLLM_DOUBLE_RELOAD_STALE: a reload that does not bring the weights back as they were (other
            # files at the model's path), which the sleep level 2 rehearsal must catch.
            self.weights_valid = not os.environ.get("VLLM_DOUBLE_RELOAD_STALE")
        elif method == "checkpoint_prepare":
            self._checkpoint_prepare()
        elif method == "checkpoint_restore":
            self._checkpoint_restore()
        else:
            raise AttributeError(f"Method {method} is not implemented by the worker")
        log(f"collective_rpc {method}")
        return [None] * self.world_size

    def _checkpoint_prepare(self) -> None:
        if self.sleeping_tags:
            raise RuntimeError("checkpoint_prepare while the executor sleeps: prepare the communicators "
                               "first, then sleep")
        if self.communicators_prepared:
            log("communicators already prepared for a process checkpoint")
        self.communicators_prepared = True
        if self.world_size > 1:
            log("PyNcclCommunicator has no checkpoint hook: NCCL communicators stay live")

    def _checkpoint_restore(self) -> None:
        if self.sleeping_tags:
            raise RuntimeError("checkpoint_restore while the executor sleeps: wake_up first")
        if not self.communicators_prepared:
            log("no communicator is prepared for a process checkpoint; nothing to restore")
        self.communicators_prepared = False


def log(message: str) -> None:
    print(f"EngineCore pid={os.getpid()}: {message}", file=sys.stderr, flush=True)


def _raise_system_exit(signum, frame):
    raise SystemExit(0)


def _run_worker(title: str, ready) -> None:
    """A worker of vLLM's MultiprocExecutor, reduced to its title, its READY and its lifetime."""
    set_process_title(title)
    signal.signal(signal.SIGTERM, _raise_system_exit)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready.send("READY")
    ready.close()
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])


def _start_workers(config: dict) -> list:
    """vLLM's MultiprocExecutor starts its workers and waits for each one's READY on a pipe."""
    context = get_mp_context()
    workers = []
    for title in _worker_titles(config):
        reader, writer = context.Pipe(duplex=False)
        worker = context.Process(target=_run_worker, args=(title, writer), name=title, daemon=True)
        worker.start()
        writer.close()
        if reader.recv() != "READY":
            raise RuntimeError(f"{title} did not start")
        reader.close()
        workers.append(worker)
    return workers


def _worker_titles(parallel: dict) -> list:
    tp, pp = parallel["tensor_parallel_size"], parallel["pipeline_parallel_size"]
    if tp * pp == 1:
        return []
    titles = []
    for p in range(pp):
        for t in range(tp):
            titles.append("Worker" + (f"_PP{p}" if pp > 1 else "") + (f"_TP{t}" if tp > 1 else ""))
    return titles


def run_engine_core(config: dict, handshake_address: str, dp_rank: int = 0) -> None:
    """Launch the EngineCore loop in this (spawned) process; vLLM: EngineCoreProc.run_engine_core."""
    set_process_title(f"EngineCore_DP{dp_rank}" if config["data_parallel_size"] > 1 else "EngineCore")
    signal.signal(signal.SIGTERM, _raise_system_exit)
    signal.signal(signal.SIGINT, _raise_system_exit)
    error = os.environ.get("VLLM_DOUBLE_INIT_ERROR")
    if error:
        log(f"EngineCore failed to start: {error}")
        sys.exit(1)
    workers = _start_workers(config)
    ctx = zmq.Context()
    try:
        handshake = make_zmq_socket(ctx, handshake_address, zmq.DEALER, bind=False, linger=0)
        handshake.send(json.dumps({"status": "HELLO", "local": True}).encode())
        addresses = json.loads(handshake.recv())
        input_socket = make_zmq_socket(ctx, addresses["input"], zmq.DEALER, bind=False,
                                       identity=dp_rank.to_bytes(2, "little"), linger=0)
        output = make_zmq_socket(ctx, addresses["output"], zmq.PUSH, bind=False, linger=4000)
        input_socket.send(b"")  # lets the client's ROUTER address this engine
        handshake.send(json.dumps({"status": "READY", "pid": os.getpid()}).encode())
        handshake.close()
        log("ready")
        _busy_loop(EngineCore(config, lambda m: output.send(json.dumps(m).encode())), input_socket)
    finally:
        ctx.destroy(linger=0)
        for worker in workers:
            worker.terminate()


def _busy_loop(core: EngineCore, input_socket: zmq.Socket) -> None:
    poller = zmq.Poller()
    poller.register(input_socket, zmq.POLLIN)
    parent = multiprocessing.parent_process().sentinel
    poller.register(parent, zmq.POLLIN)
    step_s = float(os.environ.get("VLLM_DOUBLE_STEP_S", "0.002"))
    next_step = time.monotonic()
    while True:
        timeout = max(0.0, next_step - time.monotonic()) * 1000 if core.has_work() else None
        ready = dict(poller.poll(timeout))
        if parent in ready:
            log("the frontend is gone; exiting")
            return
        while input_socket in ready and input_socket.poll(0):
            m = json.loads(input_socket.recv())
            kind = m["type"]
            if kind == "add":
                core.add(m)
            elif kind == "abort":
                core.abort(m["ids"])
            elif kind == "utility":
                try:
                    result = getattr(core, m["method"])(*m.get("args", []))
                    core.write({"type": "utility", "call_id": m["call_id"], "result": result})
                except Exception as exc:  # vLLM: UtilityOutput.failure_message
                    core.write({"type": "utility", "call_id": m["call_id"],
                                "failure": f"Call to {m['method']} method failed: {exc}"})
            elif kind == "shutdown":
                return
        if core.has_work() and time.monotonic() >= next_step:
            core.step()
            next_step = time.monotonic() + step_s
