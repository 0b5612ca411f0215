"""The resume FIFO: where a prepared engine waits, and what the controller writes to wake it.

CRIU dumps the process while it is blocked here. After a restore the run directory is bind-mounted
from another place, so the FIFO may be a different FIFO at the same path: it is always (re)opened by
path, never kept open across a wait.
"""
from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass

log = logging.getLogger("engine_host.resume")


@dataclass(frozen=True)
class ResumeMessage:
    host: str = "127.0.0.1"
    port: int = 0


def ensure_fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise RuntimeError(f"{path} exists and is not a FIFO")


def parse_resume(line: bytes) -> ResumeMessage:
    message = json.loads(line.decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError("resume message must be a JSON object")
    host = message.get("host", ResumeMessage.host)
    port = message.get("port", ResumeMessage.port)
    if not isinstance(host, str) or not host:
        raise ValueError("host must be a non-empty string")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError("port must be an integer in [0, 65535]")
    return ResumeMessage(host, port)


def wait_for_resume(path: str) -> ResumeMessage:
    """Block until a writer delivers a valid resume line; empty or bad lines are logged and skipped."""
    while True:
        ensure_fifo(path)
        # open() blocks until a writer opens the FIFO; Python retries it by path after EINTR (PEP 475),
        # which is also what a restored process does when the kernel restarts the interrupted call.
        with open(path, "rb") as fifo:
            line = fifo.readline()
        if not line.strip():
            continue
        try:
            return parse_resume(line)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.error("ignoring bad resume message %r: %s", line[:200], exc)
