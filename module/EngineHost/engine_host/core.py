"""A core worker process: builds one stage of the model and serves it over inherited pipes.

Started by pipeline.Pipeline as
`python -m engine_host.core --index I --fds CTRL_IN,CTRL_OUT,DATA_IN,DATA_OUT --frontend-pid PID`.
Control messages (build, release, reacquire, report, shutdown; one with arguments comes as a tuple
(command, {name: value})) come on the control pipe, one reply each; step messages come from the previous
stage on the data pipe and go on to the next one. End of file on either input pipe means the frontend is
gone, and the core exits.
"""
from __future__ import annotations

import time

_T0 = time.monotonic()

import argparse  # noqa: E402  (imports are timed from _T0)
import ctypes  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from multiprocessing.connection import Connection, wait  # noqa: E402

from . import logs  # noqa: E402
from .options import FailureCode, StartupError, is_out_of_memory  # noqa: E402
from .stage import StageSpec, StepFailure  # noqa: E402

log = logging.getLogger("engine_host.core")


def _build(spec: StageSpec):
    """Build the stage; its report's phases start with the import of the backend (torch: seconds)."""
    started = time.monotonic()
    module = importlib.import_module(spec.module)
    import_s = time.monotonic() - started
    stage = module.build_stage(spec)
    report = stage.report()
    report["phases"] = {"import_backend": import_s, **report["phases"]}
    return stage, report


def _serve(index: int, stage, ctrl_in: Connection, ctrl_out: Connection, data_in: Connection,
           data_out: Connection) -> int:
    while True:
        for conn in wait([data_in, ctrl_in]):
            try:
                message = conn.recv()
            except EOFError:
                log.info("frontend closed the pipe; exiting")
                return 0
            if conn is data_in:
                data_out.send(_step(index, stage, message))
                continue
            command, args = message if isinstance(message, tuple) else (message, {})
            if command == "release":
                ctrl_out.send(_release(index, stage))
            elif command == "report":
                ctrl_out.send(("ok", stage.report()))
            elif command == "reacquire":
                ctrl_out.send(_reacquire(index, stage, **args))
            elif command == "shutdown":
                ctrl_out.send(("ok", {}))
                return 0
            else:
                log.error("unknown control message %r", message)
                ctrl_out.send(("error", f"unknown control message {message!r}"))


def _release(index: int, stage) -> tuple:
    """Drop what a checkpoint must not carry. A failure is a reply naming its cause: the stage is then in no
    state to serve or to be checkpointed, and the frontend stops the engine."""
    try:
        stage.release()
    except Exception as exc:
        log.error("release failed:\n%s", traceback.format_exc())
        return "failed", {"code": FailureCode.ENGINE_FAILED,
                          "message": f"core-{index}: {type(exc).__name__}: {exc}"}
    return "ok", stage.report()


def _reacquire(index: int, stage, **args) -> tuple:
    """Take back what prepare released (args: the resume's, e.g. weight_holder). A failure is a reply naming
    its cause; the core lives on."""
    try:
        phases = stage.reacquire(**args)
    except Exception as exc:
        log.error("reacquire failed:\n%s", traceback.format_exc())
        code = FailureCode.GPU_OUT_OF_MEMORY if is_out_of_memory(exc) else FailureCode.RESUME_FAILED
        return "failed", {"code": code, "message": f"core-{index}: {type(exc).__name__}: {exc}"}
    return "ok", {**stage.report(), "phases": phases}


def _step(index: int, stage, message):
    if isinstance(message, StepFailure):
        return message
    try:
        return stage.step(message)
    except Exception as exc:  # a failed step fails its batch, not the engine
        log.error("step failed:\n%s", traceback.format_exc())
        return StepFailure(f"core-{index}: {type(exc).__name__}: {exc}")


_PR_SET_PDEATHSIG = 1


def _die_with_frontend(frontend_pid: int) -> None:
    """SIGKILL this core the moment its frontend dies, however it dies.

    A core busy in a step (or loading weights) reads no pipe, so it would not see the frontend gone and
    could hold its memory, GPU memory too, as an orphan. CRIU records the setting, so a restored engine's
    cores die with its frontend as well.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != frontend_pid:  # it died before the setting took hold
        os._exit(1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="engine_host.core")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--fds", required=True)
    parser.add_argument("--frontend-pid", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_frontend(args.frontend_pid)
    logs.setup(f"core-{args.index}")
    # The frontend coordinates shutdown; a terminal's Ctrl+C must not kill a core mid-step.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctrl_in_fd, ctrl_out_fd, data_in_fd, data_out_fd = (int(fd) for fd in args.fds.split(","))
    ctrl_in = Connection(ctrl_in_fd, writable=False)
    ctrl_out = Connection(ctrl_out_fd, readable=False)
    data_in = Connection(data_in_fd, writable=False)
    data_out = Connection(data_out_fd, readable=False)

    ctrl_out.send(("started", {"pid": os.getpid(), "import_s": time.monotonic() - _T0}))
    try:
        spec = ctrl_in.recv()
    except EOFError:
        return 0
    try:
        stage, report = _build(spec)
    except StartupError as exc:
        log.error("startup failed: %s: %s", exc.code, exc.message)
        ctrl_out.send(("failed", {"code": exc.code, "message": exc.message}))
        return 1
    except ModuleNotFoundError as exc:  # numpy for tiny; the backend's own packages
        log.error("startup failed: %s cannot import %s", sys.executable, exc.name)
        ctrl_out.send(("failed", {"code": FailureCode.MISSING_DEPENDENCY,
                                  "message": f"core-{args.index}: {sys.executable} cannot import "
                                             f"{exc.name}"}))
        return 1
    except Exception as exc:
        log.error("startup failed:\n%s", traceback.format_exc())
        ctrl_out.send(("failed", {"code": FailureCode.STARTUP_FAILED,
                                  "message": f"core-{args.index}: {type(exc).__name__}: {exc}"}))
        return 1
    ctrl_out.send(("ok", report))
    return _serve(args.index, stage, ctrl_in, ctrl_out, data_in, data_out)


if __name__ == "__main__":
    sys.exit(main())
