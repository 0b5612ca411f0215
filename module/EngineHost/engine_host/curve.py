"""The link's CurveZMQ keys (docs/protocol.md, "Security"): the server keypair the ROUTER serves with,
the client key it lets in, and their files in the run directory.

The run directory is private to the engine's owner (0700) and every key file in it is 0600, so only
whoever can read the run directory can talk to the engine. The server secret key is never written down:
the engine makes one at start, and at resume the controller sends a new one through the resume FIFO
(with new client keys in the run directory), so an engine restored from an image never serves with a
key that image holds.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import zmq
from zmq.utils import z85

from .options import FailureCode, StartupError

SERVER_PUBLIC = "server.public"
CLIENT_PUBLIC = "client.public"
CLIENT_SECRET = "client.secret"

_Z85_KEY_LENGTH = 40
_Z85_CHARACTERS = frozenset(z85.Z85CHARS)


@dataclass(frozen=True)
class ServerKeys:
    """The ROUTER's own keypair, Z85-encoded."""
    public: bytes
    secret: bytes


@dataclass(frozen=True)
class LinkKeys:
    """What the ROUTER serves with: its keypair, and the raw 32-byte public keys of the clients it lets in."""
    server: ServerKeys
    clients: frozenset


def require_curve() -> None:
    """The link is always encrypted: a libzmq without CURVE cannot serve it."""
    if not zmq.has("curve"):
        raise StartupError(FailureCode.CURVE_UNAVAILABLE,
                           f"libzmq {zmq.zmq_version()} (pyzmq {zmq.__version__}) was built without CURVE "
                           "(libsodium), and the engine serves its link only over CurveZMQ; install a pyzmq "
                           "whose libzmq has it (Debian: python3-zmq)")


def decode_key(text: bytes) -> bytes:
    """The 32 bytes of a Z85-encoded CURVE key; ValueError for anything else."""
    if len(text) != _Z85_KEY_LENGTH or not set(text) <= _Z85_CHARACTERS:
        raise ValueError(f"not a CURVE key ({_Z85_KEY_LENGTH} Z85 characters)")
    try:
        return z85.decode(text)
    except struct.error:  # a group of five characters above 2^32 - 1
        raise ValueError(f"not a CURVE key ({_Z85_KEY_LENGTH} Z85 characters)") from None


def new_server_keys() -> ServerKeys:
    public, secret = zmq.curve_keypair()
    return ServerKeys(public, secret)


def server_keys(secret: bytes) -> ServerKeys:
    """The keypair of a secret key the controller sent (ValueError when it is not one)."""
    decode_key(secret)
    return ServerKeys(zmq.curve_public(secret), secret)


def issue_client_keys(run_dir: str) -> None:
    """A new client keypair in the run directory: the one client key the engine will let in."""
    public, secret = zmq.curve_keypair()
    _write_private(run_dir, CLIENT_SECRET, secret)
    _write_private(run_dir, CLIENT_PUBLIC, public)


def link_keys(run_dir: str, server: ServerKeys) -> LinkKeys:
    """The server keypair with the client key the run directory holds now (OSError, ValueError)."""
    with open(os.path.join(run_dir, CLIENT_PUBLIC), "rb") as f:
        client = decode_key(f.read().strip())
    return LinkKeys(server, frozenset([client]))


def write_server_public(run_dir: str, server: ServerKeys) -> None:
    _write_private(run_dir, SERVER_PUBLIC, server.public)


def _write_private(run_dir: str, name: str, key: bytes) -> None:
    """0600 from the first byte, and through a temporary name and a rename: a reader sees all or nothing."""
    final = os.path.join(run_dir, name)
    temp = os.path.join(run_dir, f".{name}.{os.getpid()}.tmp")
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, final)
