"""A core that cannot take back what prepare released answers with the cause, GPU memory named as such."""
from engine_host import core
from engine_host.options import FailureCode, is_out_of_memory


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which is all the classification looks at."""


class _Stage:
    def __init__(self, failure=None):
        self._failure = failure

    def reacquire(self) -> dict:
        if self._failure is not None:
            raise self._failure
        return {"kv_pool": 0.5}

    def report(self) -> dict:
        return {"device": "cpu"}


def test_a_reacquire_that_runs_out_of_gpu_memory_is_named_so():
    failure = OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
    status, body = core._reacquire(0, _Stage(failure))
    assert status == "failed"
    assert body["code"] == FailureCode.GPU_OUT_OF_MEMORY
    assert body["message"].startswith("core-0: OutOfMemoryError: CUDA out of memory")


def test_a_cuda_error_saying_out_of_memory_is_named_so_too():
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(ValueError("bad shape"))


def test_any_other_reacquire_failure_is_a_resume_failure():
    status, body = core._reacquire(1, _Stage(ValueError("bad shape")))
    assert (status, body["code"]) == ("failed", FailureCode.RESUME_FAILED)
    assert body["message"] == "core-1: ValueError: bad shape"


def test_a_reacquire_reports_the_stage_and_its_phases():
    assert core._reacquire(0, _Stage()) == ("ok", {"device": "cpu", "phases": {"kv_pool": 0.5}})
