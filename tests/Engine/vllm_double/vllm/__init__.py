"""A test double of the `vllm` package: the module paths, signatures and behaviour that
CriuCheckpoint's vLLM adapter (engine_host/backends/vllm_engine.py) relies on, and nothing else.

It is NOT vLLM. It mirrors vllm-project/vllm `main` as stored at these commits (read for this double,
Nov 2026; the newest PyPI release then was 0.33.0; docs/vllm.md cites the lines):
  vllm/v1/engine/async_llm.py, vllm/v1/engine/core.py   00080ee13c7a451fce071ccb8d0e94d395acf5a7 and
                                                        6adad08767583f52eb4d2122111af0bf638ed5e6
  vllm/v1/engine/core_client.py, vllm/v1/engine/utils.py, vllm/utils/network_utils.py,
  vllm/utils/system_utils.py, vllm/envs.py, vllm/logprobs.py                  6adad087
  vllm/sampling_params.py                               00388f6573ccfcffad607b8c9ecdf341a4669ceb
  vllm/outputs.py                                       003d3ee22261b7937258b7531aee00e10393f1d6
  vllm/exceptions.py (VLLMClientError hierarchy), vllm/v1/engine/output_processor.py (abort emits a
  final "abort" output), vllm/config/vllm.py (compute_hash: version + sub-config hashes, 10 hex).
Where older releases differ (AsyncLLM.get_tokenizer was async, sleep() had no `mode`, VLLMValidationError
was a ValueError, abort left the generator waiting), the adapter copes with both; see docs/vllm.md.

Its "model" is a deterministic rule (vllm/v1/engine/core.py: next_token) run in an EngineCore process
started as vLLM starts it: multiprocessing with VLLM_WORKER_MULTIPROC_METHOD (spawn under the engine
host, so multiprocessing's resource tracker runs beside it), titled VLLM::EngineCore (setproctitle),
talking to AsyncLLM's client over ZeroMQ ipc sockets under VLLM_RPC_BASE_PATH. Killing it is an engine
death the way it is in vLLM. Its process-checkpoint hooks enforce the order docs/vllm.md gives
(v1/engine/core.py says how), and its generate() has logprobs.
Knobs for tests, all optional environment variables (none exist in vLLM):
  VLLM_DOUBLE_STEP_S       seconds per engine step (default 0.002)
  VLLM_DOUBLE_PLATFORM     cuda (default) | cpu — cpu has no sleep mode, like vLLM's CPU platform
  VLLM_DOUBLE_SLEEP_ERROR  the core's sleep() raises RuntimeError(<value>)
  VLLM_DOUBLE_WAKE_ERROR   the core's wake_up() raises RuntimeError(<value>)
  VLLM_DOUBLE_INIT_ERROR   the core fails while initialising (engine startup fails)
"""
from .version import __version__, __version_tuple__  # noqa: F401

_LAZY = {
    "AsyncEngineArgs": "vllm.engine.arg_utils",
    "EngineArgs": "vllm.engine.arg_utils",
    "SamplingParams": "vllm.sampling_params",
    "RequestOutput": "vllm.outputs",
    "CompletionOutput": "vllm.outputs",
    "TokensPrompt": "vllm.inputs",
    "TextPrompt": "vllm.inputs",
}


def __getattr__(name):  # vLLM's own __init__ imports these lazily too
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vllm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
