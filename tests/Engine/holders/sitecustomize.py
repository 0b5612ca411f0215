"""Test-only: makes an engine host's frontend hold something a checkpoint cannot carry, as an engine (or a
library it loads) might, so that the pre-dump inventory has something real to refuse. Put this folder on
PYTHONPATH and set CRIUCHECKPOINT_TEST_HOLD to `io_uring`, `tcp:<host>:<port>` (a connection to a listener
outside the engine) or `shm:<name>` (a file in /dev/shm, left open). The variable is removed at once, so the
processes the frontend starts hold nothing."""
import ctypes
import os
import socket

_IO_URING_SETUP = 425  # io_uring_setup(2) on x86_64 and aarch64
_held = []

_what = os.environ.pop("CRIUCHECKPOINT_TEST_HOLD", "")
if _what == "io_uring":
    _params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    _fd = ctypes.CDLL(None, use_errno=True).syscall(_IO_URING_SETUP, 4, _params)
    if _fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")
    _held.append(_fd)
elif _what.startswith("tcp:"):
    _host, _port = _what[len("tcp:"):].rsplit(":", 1)
    _held.append(socket.create_connection((_host, int(_port))))
elif _what.startswith("shm:"):
    _held.append(open(os.path.join("/dev/shm", _what[len("shm:"):]), "w"))
