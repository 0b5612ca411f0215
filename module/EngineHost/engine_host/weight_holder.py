"""The resident weight holder: one long-lived process per GPU that keeps a model's weights in GPU memory and
gives them to engines, so an engine restored with weights_from_source maps its weights at resume instead of
reading the safetensors files.

    python3 -m engine_host.weight_holder --model DIR --device N --run-dir RUN

(with module/EngineHost as the working directory or on PYTHONPATH). It reads every tensor of DIR's
safetensors files (those torch has a dtype for) with the engine's loader threads (pread into pinned
staging buffers) into ONE allocation on CUDA device N (engine_host/cuda_vmm.py: exportable as a file
descriptor), each at a 256-byte aligned offset in its file's dtype; listens on RUN/holder.sock (mode 0600;
RUN is the controller's private directory); and writes RUN/ready.json. Each connection from a process of
the holder's own uid (SO_PEERCRED) gets one message (engine_host/weight_share.py: the layout, the GPU's
UUID, the allocation's size and the files' identity, with the allocation's descriptor by SCM_RIGHTS) and is
closed; a connection from another uid is closed unanswered, and logged.

SIGTERM or SIGINT: it stops listening, frees the memory (engines that mapped it keep their mappings; the
driver frees it when the last goes), removes the socket and ready.json, and exits 0. A signal that comes
while the weights are loading takes effect once they are loaded. A failure to start writes RUN/failed.json
({"code", "message"}, as the engine's) and exits 1, or 2 for a bad command line (code bad_holder_args).
Logs go to stderr (the controller sends them to RUN/holder.log).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

from . import cuda_vmm, logs, runinfo, weight_share
from . import safetensors_files as stf
from .options import FailureCode, StartupError, is_out_of_memory

log = logging.getLogger("engine_host.weight_holder")

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_SEND_TIMEOUT_S = 10.0
_PR_SET_NAME = 15


@dataclass(frozen=True)
class HolderOptions:
    model: str  # absolute directory
    device: int  # CUDA device ordinal, as torch numbers the visible devices
    run_dir: str  # absolute


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise StartupError(FailureCode.BAD_HOLDER_ARGS, f"command line: {message}")


def parse_args(argv: list) -> HolderOptions:
    p = _Parser(prog="python3 -m engine_host.weight_holder",
                description="keep a model's weights in GPU memory and share them with engines")
    p.add_argument("--model", required=True, help="model directory with *.safetensors files")
    p.add_argument("--device", required=True, type=int, help="CUDA device ordinal")
    p.add_argument("--run-dir", required=True, help="directory for holder.sock, ready.json, failed.json")
    a = p.parse_args(argv)
    if a.device < 0:
        raise StartupError(FailureCode.BAD_HOLDER_ARGS, "--device must be >= 0")
    model = os.path.abspath(a.model)
    if not os.path.isdir(model):
        raise StartupError(FailureCode.MODEL_NOT_FOUND, f"model {model}: no such directory")
    if not stf.model_files(model):
        raise StartupError(FailureCode.MODEL_NOT_FOUND, f"model {model} has no *.safetensors files")
    return HolderOptions(model, a.device, os.path.abspath(a.run_dir))


# ---------------------------------------------------------------- the socket

class OfferServer:
    """Listens on `path` (mode 0600) on a thread of its own; each connection whose peer runs as `uid` gets
    the encoded offer with `fd`, then is closed. stop() ends the thread and removes the socket."""

    def __init__(self, path: str, payload: bytes, fd: int, uid: Optional[int] = None):
        self.path, self._payload, self._fd = path, payload, fd
        self._uid = os.getuid() if uid is None else uid
        self._listener: Optional[socket.socket] = None
        self._wake: tuple = ()
        self._thread: Optional[threading.Thread] = None
        self.served = 0
        self.refused = 0

    def start(self) -> None:
        try:
            os.unlink(self.path)  # a socket file a holder before this one left
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous = os.umask(0o177)  # the file is created 0600: no moment when others could connect
        try:
            listener.bind(self.path)
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(previous)
        os.chmod(self.path, 0o600)
        listener.listen(16)
        self._listener = listener
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, name="holder-socket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._wake[1], b"x")
        self._thread.join()
        self._thread = None
        self._listener.close()
        for fd in self._wake:
            os.close(fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is not self._listener:
                        return
                    try:
                        connection, _ = self._listener.accept()
                    except OSError as exc:
                        log.warning("accept failed: %s", exc)
                        continue
                    with connection:
                        self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        try:
            pid, uid, _ = weight_share.peer_credentials(connection)
            if uid != self._uid:
                self.refused += 1
                log.warning("refused a connection from pid %d of uid %d (the holder's uid is %d)", pid, uid,
                            self._uid)
                return
            connection.settimeout(_SEND_TIMEOUT_S)
            weight_share.send_offer(connection, self._payload, self._fd)
        except OSError as exc:
            log.warning("a connection ended before it had the weights: %s", exc)
            return
        self.served += 1
        log.info("gave the weights to pid %d", pid)


# ---------------------------------------------------------------- the weights

@dataclass
class Held:
    mapping: cuda_vmm.Mapping
    fd: int  # the allocation exported
    offer: weight_share.Offer
    load_s: float

    def free(self) -> None:
        os.close(self.fd)
        self.mapping.close()


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise StartupError(FailureCode.BACKEND_UNAVAILABLE, f"{sys.executable} cannot import torch: {exc}")
    return torch


def load(options: HolderOptions) -> Held:
    """Every tensor of the model's files into one exportable allocation on the device."""
    torch = _import_torch()
    from .backends import torch_weights

    if not torch.cuda.is_available():
        raise StartupError(FailureCode.BACKEND_UNAVAILABLE, "CUDA is not available")
    if options.device >= torch.cuda.device_count():
        raise StartupError(FailureCode.BAD_HOLDER_ARGS, f"--device {options.device}: this host has "
                                                        f"{torch.cuda.device_count()} CUDA device(s)")
    device = torch.device("cuda", options.device)
    torch.cuda.set_device(device)
    started = time.monotonic()
    try:
        entries = stf.read_directory(options.model)
    except stf.SafetensorsError as exc:
        raise StartupError(FailureCode.MODEL_NOT_FOUND, str(exc))
    tensors = sorted((e for e in entries.values() if e.dtype in torch_weights.TORCH_DTYPES),
                     key=lambda e: (e.path, e.offset))
    skipped = sorted(set(entries) - {e.name for e in tensors})
    if skipped:
        log.warning("%d tensor(s) of a dtype torch does not have are not held: %s", len(skipped),
                    ", ".join(skipped[:5]))
    if not tensors:
        raise StartupError(FailureCode.UNSUPPORTED_MODEL, f"{options.model} has no tensor torch can hold")
    fds = {path: os.open(path, os.O_RDONLY) for path in sorted({e.path for e in tensors})}
    try:
        files = tuple(_identity(options.model, path, fd) for path, fd in fds.items())
        layout, span = weight_share.lay_out(
            [(os.path.relpath(e.path, options.model), e.name, e.dtype, e.shape) for e in tensors])
        mapping = cuda_vmm.allocate(options.device, span)
        try:
            whole = torch.as_tensor(mapping, device=device)
            items = [(e, whole[spot.offset:spot.offset + spot.nbytes]
                      .view(torch_weights.TORCH_DTYPES[e.dtype]).view(e.shape))
                     for e, spot in zip(tensors, layout)]
            torch_weights.start_loading(items, device, opened=fds).wait()
            del items, whole
            exported = mapping.export_fd()
        except BaseException:
            mapping.close()
            raise
    finally:
        for fd in fds.values():
            os.close(fd)
    seconds = time.monotonic() - started
    offer = weight_share.Offer(torch_weights.device_uuid(device), mapping.size, files, tuple(layout))
    log.info("holding %d tensor(s) of %d file(s), %.3f GiB (an allocation of %d bytes) on %s, read in %.3fs "
             "(%.2f GB/s)", len(layout), len(files), span / 2**30, mapping.size, offer.gpu_uuid, seconds,
             span / max(seconds, 1e-9) / 1e9)
    return Held(mapping, exported, offer, seconds)


def _identity(model: str, path: str, fd: int) -> weight_share.FileIdentity:
    st = os.fstat(fd)
    return weight_share.FileIdentity(os.path.relpath(path, model), st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------- the process

def _set_title(model: str) -> None:
    """`criucheckpoint weight-holder <model>` in ps (setproctitle where installed; else the kernel's
    15-character name)."""
    try:
        import setproctitle
    except ImportError:
        ctypes.CDLL(None).prctl(_PR_SET_NAME, b"weight-holder", 0, 0, 0)
        return
    setproctitle.setproctitle(f"criucheckpoint weight-holder {os.path.basename(model)}")


def _failure(exc: BaseException) -> tuple:
    """(code, message) for failed.json."""
    if isinstance(exc, StartupError):
        return exc.code, exc.message
    if is_out_of_memory(exc) or getattr(exc, "code", None) == "CUDA_ERROR_OUT_OF_MEMORY":
        return FailureCode.GPU_OUT_OF_MEMORY, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, cuda_vmm.CudaError) and exc.function == "cuDeviceGetAttribute":
        return FailureCode.BACKEND_UNAVAILABLE, str(exc)
    return FailureCode.STARTUP_FAILED, f"{type(exc).__name__}: {exc}"


def _fail(run_dir: Optional[str], code: str, message: str) -> None:
    log.error("weight holder failed: %s: %s", code, message)
    if run_dir:
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        runinfo.write_failed(run_dir, code, message)


def _ready(options: HolderOptions, held: Held, socket_path: str) -> None:
    offer = held.offer.to_json()
    runinfo.write_holder_ready(options.run_dir, pid=os.getpid(), socket=socket_path, model=options.model,
                               device=options.device, gpu_uuid=offer["gpu_uuid"], bytes=offer["bytes"],
                               load_s=round(held.load_s, 4), files=offer["files"], layout=offer["layout"])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logs.setup("weight-holder")
    # Blocked before any thread starts, so every thread inherits the mask and only sigwait() below sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        options = parse_args(argv)
    except StartupError as exc:
        _fail(runinfo.run_dir_from(argv), exc.code, exc.message)
        return 2 if exc.code == FailureCode.BAD_HOLDER_ARGS else 1
    os.makedirs(options.run_dir, mode=0o700, exist_ok=True)
    runinfo.clear(options.run_dir)
    _set_title(options.model)
    log.info("weight holder pid %d: %s", os.getpid(), options)
    try:
        held = load(options)
    except Exception as exc:
        if not isinstance(exc, StartupError):
            log.exception("loading the weights failed")
        _fail(options.run_dir, *_failure(exc))
        return 1
    server = OfferServer(os.path.join(options.run_dir, weight_share.SOCKET_NAME),
                         weight_share.encode(held.offer), held.fd)
    try:
        server.start()
    except OSError as exc:
        held.free()
        _fail(options.run_dir, FailureCode.STARTUP_FAILED, f"cannot listen on {server.path}: {exc}")
        return 1
    _ready(options, held, server.path)
    log.info("ready: listening on %s", server.path)
    signum = signal.sigwait(_STOP_SIGNALS)
    log.info("received signal %d: stopping (%d engine(s) served, %d connection(s) refused)", signum,
             server.served, server.refused)
    server.stop()
    runinfo.remove_ready(options.run_dir)
    held.free()
    logs.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
