"""As vllm/utils/system_utils.py: process titles, and the multiprocessing context vLLM starts its processes
with."""
import multiprocessing

from vllm import envs


def get_mp_context():
    return multiprocessing.get_context(envs.VLLM_WORKER_MULTIPROC_METHOD)


def set_process_title(name: str, suffix: str = "", prefix: str | None = None) -> None:
    """vLLM's titles are "<prefix>::<name>[_<suffix>]"; without setproctitle (a vLLM dependency) none is
    set."""
    try:
        import setproctitle
    except ImportError:
        return
    if suffix:
        name = f"{name}_{suffix}"
    setproctitle.setproctitle(f"{envs.VLLM_PROCESS_NAME_PREFIX if prefix is None else prefix}::{name}")
