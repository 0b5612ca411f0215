"""The socket link: a ZeroMQ context, the ROUTER clients connect to, and the socket I/O thread.

The ROUTER is a CurveZMQ server (docs/protocol.md, "Security"). Once a client's CURVE handshake has
shown that it holds the secret of the public key it presents, libzmq asks the context's ZAP handler
whether that key may connect; the handler is a REP socket the I/O thread polls, and it lets in only the
client keys this engine accepts. A client without one never gets a connection, so nothing it sends is
read or answered.

pyzmq sockets are not thread-safe, so the ROUTER belongs to the I/O thread alone. It parses requests,
answers the cheap ops itself (hello, health: they must work while a long step runs) and queues the
rest for the scheduler. The scheduler sends replies through an Outbox, an inproc PUSH whose PULL end
the I/O thread polls together with the ROUTER. A one-frame `close` message on that path tells the I/O
thread to stop after forwarding everything before it, so a last reply is never lost.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from typing import Callable, Optional

import zmq

from . import protocol
from .curve import LinkKeys
from .protocol import ErrorCode, ProtocolError
from .scheduler import Incoming

log = logging.getLogger("engine_host.frontend")

_REPLIES_ENDPOINT = "inproc://engine-replies"
_ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks who may connect (RFC 27), one per context
_ZAP_VERSION = b"1.0"
# A refused client reconnects every 100 ms or so: refusals are counted and logged at most this often.
_REFUSALS_LOG_INTERVAL_S = 10.0
_CLOSE = b"close"
_ROUTER_LINGER_MS = 5000  # time given to flush the last replies (prepare_checkpoint, shutdown)
_OUTBOX_LINGER_MS = 10000
_READ_BATCH = 256  # requests read before replies are forwarded again


class Outbox:
    """The scheduler thread's reply socket; create and use it on that thread only."""

    def __init__(self, context: zmq.Context, close_requested: threading.Event):
        self._close_requested = close_requested
        self._socket: Optional[zmq.Socket] = context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, 0)
        self._socket.connect(_REPLIES_ENDPOINT)

    def send(self, identity: bytes, payload: bytes) -> None:
        if self._socket is None:  # the link is closed (prepared or stopping): no one can hear it
            log.warning("dropping a reply: the link is closed")
            return
        self._socket.send_multipart([identity, payload])

    def close_link(self) -> None:
        """Ask the I/O thread to close the link once it has sent every reply before this one."""
        if self._socket is None:
            return
        self._socket.send(_CLOSE)
        self._socket.close(linger=_OUTBOX_LINGER_MS)
        self._socket = None
        self._close_requested.set()


class Frontend:
    """Binds on construction (bind errors raise here); the I/O thread runs until close().

    With listener_fd the ROUTER takes over that already listening TCP socket (ZMQ_USE_FD; host and
    port must describe it) and closes it with the link.
    """

    def __init__(self, host: str, port: int, inbox: "queue.SimpleQueue",
                 answer_locally: Callable[[protocol.Request], Optional[object]], keys: LinkKeys,
                 listener_fd: Optional[int] = None):
        self._inbox = inbox
        self._answer_locally = answer_locally
        self._clients = keys.clients
        self._refusals = 0
        self._refusals_logged_at = float("-inf")
        self._close_requested = threading.Event()
        self._context = zmq.Context(io_threads=1)
        try:
            # Bound before the ROUTER: libzmq lets every client key in while no handler listens here.
            self._zap = self._context.socket(zmq.REP)
            self._zap.bind(_ZAP_ENDPOINT)
            self._router = self._context.socket(zmq.ROUTER)
            self._router.curve_server = True
            self._router.curve_secretkey = keys.server.secret
            self._router.curve_publickey = keys.server.public
            # Never drop a reply because a client reads slowly (a ROUTER drops at the high-water mark).
            self._router.setsockopt(zmq.SNDHWM, 0)
            if ":" in host:
                self._router.setsockopt(zmq.IPV6, 1)
                host = f"[{host}]"
            if listener_fd is not None:
                self._router.setsockopt(zmq.USE_FD, listener_fd)
            self._router.bind(f"tcp://{host}:{port if port else '*'}")
            self.endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
            self._replies = self._context.socket(zmq.PULL)
            self._replies.bind(_REPLIES_ENDPOINT)
        except zmq.ZMQError:
            self._context.destroy(linger=0)
            raise
        self._thread = threading.Thread(target=self._serve, name="socket-io", daemon=True)
        self._thread.start()
        log.info("listening on %s (CurveZMQ)", self.endpoint)

    def connect_outbox(self) -> Outbox:
        return Outbox(self._context, self._close_requested)

    def close(self) -> None:
        """Stop the I/O thread (after it flushed queued replies) and terminate the context."""
        # Normally the scheduler's outbox already queued the close marker behind its last replies.
        # A second marker from another PUSH could overtake those replies (PULL reads its peers in
        # turn), so one is only sent when the scheduler did not.
        if not self._close_requested.is_set():
            self.connect_outbox().close_link()
        self._thread.join()
        # term() waits for the ROUTER's linger, i.e. until the last replies reached the peers' TCP.
        self._context.term()
        log.info("closed %s", self.endpoint)

    # ------------------------------------------------------------ I/O thread

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._replies, zmq.POLLIN)
        poller.register(self._zap, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self._zap in ready:
                    self._authenticate()
                if self._replies in ready and self._forward_replies():
                    return
                if self._router in ready:
                    self._read_requests()
        except Exception:
            log.critical("socket thread failed:\n%s", traceback.format_exc())
        finally:
            self._router.close(linger=_ROUTER_LINGER_MS)
            self._replies.close(linger=0)
            self._zap.close(linger=0)

    def _authenticate(self) -> None:
        """Answer libzmq's ZAP request (RFC 27) about a client in its CURVE handshake: only a client key
        this engine accepts gets a connection."""
        frames = self._zap.recv_multipart()
        # version, request id, domain, address, routing id, mechanism, then the client's public key
        request_id = frames[1] if len(frames) > 1 else b""
        accepted = (len(frames) == 7 and frames[0] == _ZAP_VERSION and frames[5] == b"CURVE"
                    and frames[6] in self._clients)
        if not accepted:
            self._note_refusal(frames[3] if len(frames) > 3 else b"?")
        status = (b"200", b"OK") if accepted else (b"400", b"client key not accepted")
        self._zap.send_multipart([_ZAP_VERSION, request_id, *status, b"", b""])

    def _note_refusal(self, address: bytes) -> None:
        self._refusals += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= _REFUSALS_LOG_INTERVAL_S:
            log.warning("refused %d connection(s) with a client key this engine does not accept, "
                        "the last from %s", self._refusals, address.decode(errors="replace"))
            self._refusals, self._refusals_logged_at = 0, now

    def _forward_replies(self) -> bool:
        """Send every queued reply; True when the close marker arrived."""
        while True:
            try:
                frames = self._replies.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            if len(frames) == 1:
                return True
            identity, payload = frames
            self._router.send_multipart([identity, b"", payload])

    def _read_requests(self) -> None:
        for _ in range(_READ_BATCH):
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = frames[0]
            try:
                self._on_request(identity, frames[1:])
            except Exception as exc:  # a bug answering one request must not stop the socket thread
                log.error("failed to handle a request:\n%s", traceback.format_exc())
                self._reply(identity, protocol.encode_error(None, ErrorCode.ENGINE_ERROR, str(exc)))

    def _on_request(self, identity: bytes, frames: list) -> None:
        arrival = time.monotonic()
        if len(frames) != 2 or frames[0] != b"":
            self._reply(identity, protocol.encode_error(
                None, ErrorCode.BAD_REQUEST, "expected frames [empty][msgpack request]"))
            return
        try:
            request = protocol.parse_request(frames[1])
        except ProtocolError as exc:
            self._reply(identity, protocol.encode_error(exc.request_id, exc.code, exc.message))
            return
        result = self._answer_locally(request)
        if result is not None:
            self._reply(identity, protocol.encode_final(request.id, result))
        else:
            self._inbox.put(Incoming(identity, request, arrival))

    def _reply(self, identity: bytes, payload: bytes) -> None:
        self._router.send_multipart([identity, b"", payload])
