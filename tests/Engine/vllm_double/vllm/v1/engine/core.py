"""The double's EngineCore process (vLLM: vllm/v1/engine/core.py, EngineCoreProc.run_engine_core).

As in vLLM, the engine core is a separate process that owns the scheduler and the "model"; the frontend
(AsyncLLM) talks to it over a pipe (vLLM: ZeroMQ ipc sockets) and notices its death. Run as
`python -m vllm.v1.engine.core`; JSON lines on stdin (init, add, abort, utility), JSON lines on stdout
(ready, outputs, utility results). Every running request advances one token per step (continuous
batching), one step every VLLM_DOUBLE_STEP_S seconds. Sleep follows vLLM's EngineCore.sleep: the
scheduler is paused first (mode "abort" aborts what runs), then the executor sleeps; wake_up resumes
scheduling once no memory tag sleeps any more.
"""
import json
import os
import select
import signal
import sys
import time

from vllm.tokenizers import EOS, OFFSET

_FNV_PRIME, _FNV_BASIS, _MASK = 16777619, 2166136261, 0xFFFFFFFF


def next_token(token_ids: list, temperature: float = 0.0, seed: int = 0) -> int:
    """The double's model: a deterministic function of the last tokens and the position.

    Greedy (temperature 0) ignores the seed; sampled output depends on the seed. Mostly printable
    ASCII bytes; now and then the EOS token.
    """
    h = _FNV_BASIS
    for t in token_ids[-4:]:
        h = ((h ^ t) * _FNV_PRIME) & _MASK
    h = ((h ^ len(token_ids)) * _FNV_PRIME) & _MASK
    if temperature > 0:
        h = ((h ^ (seed & _MASK) ^ (seed >> 32 & _MASK)) * _FNV_PRIME) & _MASK
        h = ((h ^ int(temperature * 1000)) * _FNV_PRIME) & _MASK
    if h % 67 == 0:
        return EOS
    return OFFSET + 32 + (h >> 7) % 95


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
        self.comms_checkpointed = False

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
            token = next_token(req.ids, req.temperature, req.seed) if self.weights_valid else OFFSET
            req.ids.append(token)
            req.n_out += 1
            finish, stop_reason = None, None
            if len(req.ids) >= self.max_model_len or req.n_out >= req.max_tokens:
                finish = "length"
            elif not req.ignore_eos and token == EOS:
                finish = "stop"
            elif token in req.stop_token_ids:
                finish, stop_reason = "stop", token
            outputs.append({"id": req.id, "new": [token], "finish": finish, "stop_reason": stop_reason})
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
            self.weights_valid = True
        elif method == "checkpoint_prepare":
            self.comms_checkpointed = True
        elif method == "checkpoint_restore":
            self.comms_checkpointed = False
        else:
            raise AttributeError(f"Method {method} is not implemented by the worker")
        log(f"collective_rpc {method}")
        return [None] * self.world_size


def log(message: str) -> None:
    print(f"EngineCore pid={os.getpid()}: {message}", file=sys.stderr, flush=True)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the frontend coordinates shutdown
    out = sys.stdout

    def write(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    fd = sys.stdin.fileno()
    buffer = b""

    def read_lines(timeout):
        nonlocal buffer
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(fd, 1 << 16)
        if not data:
            raise EOFError
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    try:
        init = []
        while not init:
            init = read_lines(None)
    except EOFError:
        return 0
    error = os.environ.get("VLLM_DOUBLE_INIT_ERROR")
    if error:
        log(f"EngineCore failed to start: {error}")
        return 1
    core = EngineCore(init[0]["config"], write)
    write({"type": "ready", "pid": os.getpid()})
    log("ready")
    step_s = float(os.environ.get("VLLM_DOUBLE_STEP_S", "0.002"))
    next_step = time.monotonic()
    while True:
        timeout = max(0.0, next_step - time.monotonic()) if core.has_work() else None
        try:
            messages = read_lines(timeout)
        except EOFError:
            log("frontend closed the pipe; exiting")
            return 0
        for m in messages:
            kind = m["type"]
            if kind == "add":
                core.add(m)
            elif kind == "abort":
                core.abort(m["ids"])
            elif kind == "utility":
                try:
                    result = getattr(core, m["method"])(*m.get("args", []))
                    write({"type": "utility", "call_id": m["call_id"], "result": result})
                except Exception as exc:  # vLLM: UtilityOutput.failure_message
                    write({"type": "utility", "call_id": m["call_id"],
                           "failure": f"Call to {m['method']} method failed: {exc}"})
            elif kind == "shutdown":
                return 0
        if core.has_work() and time.monotonic() >= next_step:
            core.step()
            next_step = time.monotonic() + step_s


if __name__ == "__main__":
    sys.exit(main())
