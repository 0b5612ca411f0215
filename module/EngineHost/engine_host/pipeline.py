"""Frontend side of the core processes: start them, build their stages, run steps, stop them.

Cores are fresh interpreters (`python -m engine_host.core`) that inherit anonymous pipes made by
multiprocessing.Pipe(duplex=False). We do not use multiprocessing's 'spawn' context itself because on
POSIX it always starts a resource_tracker process, which would become part of every checkpoint; plain
pipes also keep sockets out of the process tree (the frontend's only sockets are ZeroMQ's).
A core's death shows as end-of-file on its control pipe (the core holds the only write end).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from multiprocessing import Pipe
from multiprocessing.connection import wait
from typing import Any, Optional

from .options import FailureCode, StartupError
from .stage import StepRequest

log = logging.getLogger("engine_host.pipeline")

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STOP_TIMEOUT_S = 10.0


class CoreDied(Exception):
    pass


class ControlFailed(Exception):
    """A core answered a control command with a failure: `code` is a FailureCode naming the cause."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Pipeline:
    def __init__(self, specs: list):
        self._specs: list = specs
        self._procs: list = []
        self._ctrl_out: list = []  # frontend → core i
        self._ctrl_in: list = []  # core i → frontend
        self._data_out = None  # frontend → core 0
        self._data_in = None  # last core → frontend

    @property
    def pids(self) -> list:
        return [p.pid for p in self._procs]

    @property
    def roles(self) -> list:
        """(pid, role) of every core, in order."""
        return [(pid, f"core-{i}") for i, pid in enumerate(self.pids)]

    # ------------------------------------------------------------ startup

    def spawn(self) -> list:
        """Start every core; returns their 'started' reports once all have imported their modules."""
        n = len(self._specs)
        data = [Pipe(duplex=False) for _ in range(n + 1)]  # data[i]: into core i; data[n]: back home
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        for i in range(n):
            to_core_r, to_core_w = Pipe(duplex=False)
            from_core_r, from_core_w = Pipe(duplex=False)
            child = [to_core_r, from_core_w, data[i][0], data[i + 1][1]]
            fds = ",".join(str(c.fileno()) for c in child)
            proc = subprocess.Popen(
                [sys.executable, "-m", "engine_host.core", "--index", str(i), "--fds", fds,
                 "--frontend-pid", str(os.getpid())],
                pass_fds=[c.fileno() for c in child], stdin=subprocess.DEVNULL, env=env)
            for c in child:
                c.close()
            self._procs.append(proc)
            self._ctrl_out.append(to_core_w)
            self._ctrl_in.append(from_core_r)
        self._data_out = data[0][1]
        self._data_in = data[n][0]
        return self._gather("starting")

    def build(self) -> list:
        """Send each core its stage spec; they build in parallel. Returns their reports."""
        for conn, spec in zip(self._ctrl_out, self._specs):
            conn.send(spec)
        return self._gather("building its stage")

    def _gather(self, doing: str) -> list:
        replies: list = [None] * len(self._procs)
        for i, conn in enumerate(self._ctrl_in):
            try:
                status, body = conn.recv()
            except EOFError:
                raise StartupError(FailureCode.STARTUP_FAILED,
                                   f"core-{i} exited while {doing}: {self._exit_description(i)}")
            if status == "failed":
                raise StartupError(body["code"], body["message"])
            replies[i] = body
        return replies

    # ------------------------------------------------------------ serving

    def step(self, request: StepRequest) -> Any:
        """Run one step through all cores; StepResult or StepFailure. Raises CoreDied."""
        try:
            self._data_out.send(request)
        except OSError:
            raise CoreDied(self._death_report())
        # A core that dies mid-step closes its control pipe: wait on those too, not only the result.
        ready = wait([self._data_in] + self._ctrl_in)
        if self._data_in in ready:
            try:
                return self._data_in.recv()
            except EOFError:
                pass
        raise CoreDied(self._death_report())

    def control(self, command: str, **args) -> list:
        """Send a control command (release, reacquire, report), with its arguments if any, to every core at
        once; their replies."""
        message = (command, args) if args else command
        try:
            for conn in self._ctrl_out:
                conn.send(message)
            replies = []
            for conn in self._ctrl_in:
                status, body = conn.recv()
                if status == "failed":
                    raise ControlFailed(body["code"], f"{command} failed: {body['message']}")
                if status != "ok":
                    raise RuntimeError(f"{command} failed: {body}")
                replies.append(body)
            return replies
        except (OSError, EOFError):
            raise CoreDied(self._death_report())

    def check_alive(self) -> None:
        if wait(self._ctrl_in, timeout=0) or any(p.poll() is not None for p in self._procs):
            raise CoreDied(self._death_report())

    def _exit_description(self, i: int) -> str:
        proc = self._procs[i]
        try:
            code = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return f"pid {proc.pid} still running"
        return f"pid {proc.pid} exited with code {code}"

    def _death_report(self) -> str:
        # A closed pipe can be seen a moment before the exit status: give the kernel that moment.
        deadline = time.monotonic() + 2.0
        while all(p.poll() is None for p in self._procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        dead = [f"core-{i} (pid {p.pid}) exited with code {p.poll()}"
                for i, p in enumerate(self._procs) if p.poll() is not None]
        return "; ".join(dead) or "a core closed its pipe"

    # ------------------------------------------------------------ shutdown

    def stop(self, timeout: Optional[float] = _STOP_TIMEOUT_S) -> None:
        """Ask every core to exit, then kill what is left; reaps all of them."""
        for conn in self._ctrl_out:
            try:
                conn.send("shutdown")
            except OSError:
                pass
        for i, proc in enumerate(self._procs):
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("core-%d (pid %d) did not exit; killing it", i, proc.pid)
                proc.kill()
                proc.wait()
        for conn in self._ctrl_out + self._ctrl_in + [self._data_out, self._data_in]:
            if conn is not None:
                conn.close()
        self._ctrl_out, self._ctrl_in, self._data_out, self._data_in = [], [], None, None
