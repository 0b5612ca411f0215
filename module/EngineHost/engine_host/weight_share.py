"""What a weight holder and an engine agree on: the holder's socket message and how an engine plans to map
its parameters onto the holder's memory. No torch and no CUDA here, so all of it is testable anywhere.

The message: on each connection to RUN/holder.sock the holder sends a 4-byte big-endian length N, then N
bytes of UTF-8 JSON (an Offer), the descriptor of its GPU allocation riding on the first bytes as
SCM_RIGHTS ancillary data; then it closes. The JSON:

    {"version": 1, "gpu_uuid": "GPU-…", "bytes": ALLOCATION_SIZE,
     "files": [{"name": FILE, "size": BYTES, "mtime_ns": NS}, …],
     "layout": [{"file": FILE, "name": TENSOR, "dtype": "BF16", "shape": [..], "offset": O, "nbytes": N}, …]}

FILE is a safetensors file's path relative to the model directory; `files` is what fstat said of each
descriptor the holder read; each tensor lies at its 256-byte aligned `offset` in the allocation, in the
file's dtype (safetensors names).
"""
from __future__ import annotations

import array
import json
import os
import socket
import struct
from dataclasses import asdict, dataclass
from typing import Optional

from .safetensors_files import DTYPE_SIZES

SOCKET_NAME = "holder.sock"
VERSION = 1
ALIGNMENT = 256
MAX_MESSAGE_BYTES = 64 << 20
_LENGTH = struct.Struct(">I")
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_FD = array.array("i")


class HolderMismatch(Exception):
    """The holder cannot give this engine its weights: the message says why."""


@dataclass(frozen=True)
class FileIdentity:
    name: str  # relative to the model directory
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class LayoutEntry:
    file: str
    name: str
    dtype: str  # safetensors dtype name
    shape: tuple
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Offer:
    gpu_uuid: str
    bytes: int
    files: tuple  # FileIdentity
    layout: tuple  # LayoutEntry

    def to_json(self) -> dict:
        return {"version": VERSION, "gpu_uuid": self.gpu_uuid, "bytes": self.bytes,
                "files": [asdict(f) for f in self.files],
                "layout": [{**asdict(e), "shape": list(e.shape)} for e in self.layout]}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def lay_out(tensors: list) -> tuple:
    """tensors: [(file, name, dtype, shape)] in the order to place them → (layout entries, bytes they
    span). Each starts at the next multiple of ALIGNMENT."""
    layout, offset = [], 0
    for file, name, dtype, shape in tensors:
        offset = -(-offset // ALIGNMENT) * ALIGNMENT
        nbytes = _numel(shape) * DTYPE_SIZES[dtype]
        layout.append(LayoutEntry(file, name, dtype, tuple(shape), offset, nbytes))
        offset += nbytes
    return layout, offset


# ---------------------------------------------------------------- parsing

def _field(message: dict, name: str, kind):
    value = message.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise HolderMismatch(f"the holder's message has no valid {name!r}")
    return value


def _count(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise HolderMismatch(f"the holder's message has a bad {what}: {value!r}")
    return value


def parse_offer(message) -> Offer:
    """An Offer from the decoded JSON; HolderMismatch when any part of it is not what VERSION says."""
    if not isinstance(message, dict):
        raise HolderMismatch("the holder's message is not a JSON object")
    if message.get("version") != VERSION:
        raise HolderMismatch(f"the holder speaks version {message.get('version')!r}, this engine {VERSION}")
    uuid = _field(message, "gpu_uuid", str)
    size = _count(message.get("bytes"), "bytes")
    files = []
    for f in _field(message, "files", list):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise HolderMismatch(f"the holder's message has a bad file: {f!r}")
        files.append(FileIdentity(f["name"], _count(f.get("size"), "file size"),
                                  _count(f.get("mtime_ns"), "file mtime_ns")))
    layout, names = [], set()
    for e in _field(message, "layout", list):
        layout.append(_layout_entry(e, size))
        if layout[-1].name in names:
            raise HolderMismatch(f"the holder's layout names {layout[-1].name!r} twice")
        names.add(layout[-1].name)
    return Offer(uuid, size, tuple(files), tuple(layout))


def _layout_entry(e, size: int) -> LayoutEntry:
    if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not isinstance(e.get("name"), str) \
            or e.get("dtype") not in DTYPE_SIZES or not isinstance(e.get("shape"), list):
        raise HolderMismatch(f"the holder's layout has a bad entry: {e!r}")
    shape = tuple(_count(d, "dimension") for d in e["shape"])
    offset, nbytes = _count(e.get("offset"), "offset"), _count(e.get("nbytes"), "nbytes")
    if offset % ALIGNMENT or nbytes != _numel(shape) * DTYPE_SIZES[e["dtype"]] or offset + nbytes > size:
        raise HolderMismatch(f"the holder's layout entry {e['name']!r} does not fit its shape, dtype or "
                             f"the allocation: {e!r}")
    return LayoutEntry(e["file"], e["name"], e["dtype"], shape, offset, nbytes)


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class WantedTensor:
    """A parameter as the engine would read it from the files: its tensor's name and file, its shape, and
    the dtype the parameter has in memory (a safetensors name)."""
    name: str
    file: str
    shape: tuple
    dtype: str


@dataclass(frozen=True)
class MapStep:
    index: int  # into the wanted list
    entry: LayoutEntry
    view: bool  # True: the parameter becomes a view of the holder's bytes; False: a converted copy


def plan_mapping(wanted: list, offer: Offer, gpu_uuid: str, files: dict) -> list:
    """One MapStep per wanted tensor, or HolderMismatch naming the first reason the holder's memory is not
    the weights this engine would read: another GPU, a file that is not the one the holder read (files:
    {name: (size, mtime_ns)} of the engine's files now), a tensor missing or of another shape."""
    if offer.gpu_uuid != gpu_uuid:
        raise HolderMismatch(f"the holder is on GPU {offer.gpu_uuid}, this engine on {gpu_uuid}")
    held = {f.name: (f.size, f.mtime_ns) for f in offer.files}
    for name in sorted({w.file for w in wanted}):
        if name not in held:
            raise HolderMismatch(f"the holder did not load {name}")
        if held[name] != files.get(name):
            raise HolderMismatch(f"{name} is not the file the holder loaded (size and mtime_ns "
                                 f"{list(held[name])} there, {list(files.get(name) or ())} here)")
    by_name = {e.name: e for e in offer.layout}
    plan = []
    for i, w in enumerate(wanted):
        entry = by_name.get(w.name)
        if entry is None or entry.file != w.file:
            raise HolderMismatch(f"the holder has no tensor {w.name} of {w.file}")
        if entry.shape != tuple(w.shape):
            raise HolderMismatch(f"the holder's {w.name} is {list(entry.shape)}, this engine's "
                                 f"{list(w.shape)}")
        plan.append(MapStep(i, entry, view=entry.dtype == w.dtype))
    return plan


# ---------------------------------------------------------------- the socket

def encode(offer: Offer) -> bytes:
    body = json.dumps(offer.to_json(), separators=(",", ":")).encode("utf-8")
    return _LENGTH.pack(len(body)) + body


def peer_credentials(connection: socket.socket) -> tuple:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED: as of its connect())."""
    return _UCRED.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def send_offer(connection: socket.socket, payload: bytes, fd: int) -> None:
    """The encoded offer with `fd` by SCM_RIGHTS on its first bytes."""
    sent = socket.send_fds(connection, [payload], [fd])
    if sent < len(payload):
        connection.sendall(payload[sent:])


def receive_offer(path: str, timeout_s: float = 10.0) -> tuple:
    """Connect to a holder's socket; (Offer, descriptor) — the caller owns the descriptor. OSError when the
    holder cannot be reached or hangs up early, HolderMismatch when what it sends is not an offer."""
    fds: list = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
            channel.settimeout(timeout_s)
            channel.connect(path)
            data = _receive(channel, fds)
        if len(fds) != 1:
            raise HolderMismatch(f"the holder sent {len(fds)} descriptors, expected one")
        try:
            message = json.loads(data.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError is one
            raise HolderMismatch(f"the holder's message is not JSON: {exc}") from None
        offer = parse_offer(message)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return offer, fds[0]


def _receive(channel: socket.socket, fds: list) -> bytes:
    """The length-prefixed body; descriptors that came with any of it are appended to fds."""
    data = bytearray()
    need: Optional[int] = None
    while need is None or len(data) < _LENGTH.size + need:
        # recvmsg itself: socket.recv_fds does not pass MSG_CMSG_CLOEXEC on in every Python.
        chunk, ancillary, flags, _ = channel.recvmsg(1 << 16, socket.CMSG_SPACE(_FD.itemsize),
                                                     socket.MSG_CMSG_CLOEXEC)
        for level, kind, fd_bytes in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(fd_bytes[:len(fd_bytes) - len(fd_bytes) % _FD.itemsize])
                fds.extend(received)
        if flags & socket.MSG_CTRUNC:
            raise HolderMismatch("the holder sent more descriptors than one")
        if not chunk:
            raise OSError("the holder closed the connection before its whole message")
        data += chunk
        if need is None and len(data) >= _LENGTH.size:
            (need,) = _LENGTH.unpack(data[:_LENGTH.size])
            if need > MAX_MESSAGE_BYTES:
                raise HolderMismatch(f"the holder's message of {need} bytes is over {MAX_MESSAGE_BYTES}")
    return bytes(data[_LENGTH.size:_LENGTH.size + need])
