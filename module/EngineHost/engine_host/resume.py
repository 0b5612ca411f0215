"""The resume FIFO: where a prepared engine waits, and what the controller writes to wake it.

CRIU dumps the process while it is blocked here. After a restore the run directory is bind-mounted
from another place, so the FIFO may be a different FIFO at the same path: it is always (re)opened by
path, never kept open across a wait.

A resume message may name a handover socket in the run directory: the controller listens there and
passes the engine, by SCM_RIGHTS, a TCP socket already listening on host:port. It was made in the
controller's network namespace, so a replica restored into a network namespace of its own is still
reached where the controller expects it.

Every resume message carries the new server secret key of the link (docs/protocol.md, "Security"); the
controller has written the new client keys into the run directory before it. A message without one is a
bad message: an engine never serves again with the keys it had, which its checkpoint image holds.

A resume message may carry the canary the checkpoint recorded (`canary`), which the engine answers again
and compares before it binds, or `skip_canary` (docs/protocol.md).

A resume message may name a weight holder's socket (`weight_holder`): an engine whose weights were released
(weights_from_source) maps them from that holder's GPU memory instead of reading the files
(engine_host/weight_holder.py).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import stat
from dataclasses import dataclass
from typing import Optional

from . import canary, curve, weight_share

log = logging.getLogger("engine_host.resume")


@dataclass(frozen=True)
class ResumeMessage:
    server: curve.ServerKeys  # from the message's curve_secret_key
    host: str = "127.0.0.1"
    port: int = 0
    handover: Optional[str] = None  # a socket file name in the run directory
    canary: Optional[canary.Canary] = None  # what the answer must be; None: the engine's own at prepare
    skip_canary: bool = False
    weight_holder: Optional[str] = None  # absolute path of a weight holder's socket


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
    handover = message.get("handover")
    if handover is not None and (not isinstance(handover, str) or not handover
                                 or "/" in handover or handover in (".", "..")):
        raise ValueError("handover must be a file name in the run directory")
    secret = message.get("curve_secret_key")
    if not isinstance(secret, str):
        raise ValueError("curve_secret_key is required: the Z85 CURVE secret key to serve with")
    try:
        server = curve.server_keys(secret.encode("ascii"))
    except ValueError:  # UnicodeEncodeError is one
        raise ValueError("curve_secret_key must be a Z85 CURVE secret key (40 characters)") from None
    expected = message.get("canary")
    if expected is not None:
        expected = canary.parse(expected)
    skip = message.get("skip_canary", False)
    if not isinstance(skip, bool):
        raise ValueError("skip_canary must be a boolean")
    holder = message.get("weight_holder")
    if holder is not None and not _is_holder_socket(holder):
        raise ValueError(f"weight_holder must be the absolute path of a weight holder's socket "
                         f"(…/{weight_share.SOCKET_NAME})")
    return ResumeMessage(server, host, port, handover, expected, skip, holder)


def _is_holder_socket(path) -> bool:
    return (isinstance(path, str) and os.path.isabs(path) and "\0" not in path
            and path.endswith("/" + weight_share.SOCKET_NAME))


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
            # Not the line itself: it may hold a secret key.
            log.error("ignoring a bad resume message of %d bytes: %s", len(line), exc)


def receive_listener(path: str, timeout_s: float = 30.0) -> int:
    """Connect to the controller's handover socket and take the listening TCP descriptor it sends.

    The caller owns the descriptor (libzmq takes it over with ZMQ_USE_FD and closes it).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(timeout_s)
        channel.connect(path)
        _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise OSError(f"{path} sent {len(fds)} descriptors, expected one listening socket")
    fd = fds[0]
    os.set_inheritable(fd, False)
    with socket.socket(fileno=os.dup(fd)) as probe:
        listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        kind = probe.type
    if not listening or kind != socket.SOCK_STREAM:
        os.close(fd)
        raise OSError(f"{path} sent a descriptor that is not a listening TCP socket")
    return fd
