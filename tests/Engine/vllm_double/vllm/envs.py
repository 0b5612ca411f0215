"""As vllm/envs.py: the environment variables the double reads, with vLLM's names and defaults (read when
used, as vLLM's lazy module attributes are)."""
import os
import tempfile


def __getattr__(name: str):
    if name == "VLLM_RPC_BASE_PATH":  # directory of the frontend <-> EngineCore ipc socket files
        return os.getenv("VLLM_RPC_BASE_PATH", tempfile.gettempdir())
    if name == "VLLM_WORKER_MULTIPROC_METHOD":
        return os.getenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    if name == "VLLM_PROCESS_NAME_PREFIX":
        return os.getenv("VLLM_PROCESS_NAME_PREFIX", "VLLM")
    raise AttributeError(f"module 'vllm.envs' has no attribute {name!r}")
