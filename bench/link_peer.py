"""What CurveZMQ costs the link, for bench.ps1: the engine's end of the link as far as a health request
goes, plain or CURVE. A pyzmq ROUTER whose thread does per message what the engine's socket thread does
for health (protocol.py parses the request, encodes the reply), and, with --curve, is a CURVE server
whose ZAP handler that same thread polls, as the engine's is. The engine itself has no plain link to
compare with, on purpose.

    python3 link_peer.py [--curve]      (module/EngineHost on PYTHONPATH)

Prints one JSON line, {"endpoint", "server_public", "client_secret", "request"}: the keys (null when
plain) and a health request as EngineLink sends it (msgpack, base64), then answers until stdin closes.
"""
import argparse
import base64
import json
import sys
import threading

import msgpack
import zmq
from zmq.utils import z85

from engine_host import protocol

_ZAP_ENDPOINT = "inproc://zeromq.zap.01"


def _serve(router: zmq.Socket, zap, client_public: bytes) -> None:
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    if zap is not None:
        poller.register(zap, zmq.POLLIN)
    while True:
        ready = dict(poller.poll())
        if zap in ready:
            frames = zap.recv_multipart()
            accepted = frames[5] == b"CURVE" and frames[6] == client_public
            zap.send_multipart([b"1.0", frames[1], b"200" if accepted else b"400", b"", b"", b""])
        if router in ready:
            identity, _, payload = router.recv_multipart()
            request = protocol.parse_request(payload)
            reply = protocol.encode_final(request.id, protocol.HealthResult("ready", 0, 0.0, 0))
            router.send_multipart([identity, b"", reply])


def main(argv: list) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--curve", action="store_true")
    curve = parser.parse_args(argv).curve
    context = zmq.Context(io_threads=1)
    zap = None
    server_public = client_secret = client_public = None
    if curve:
        zap = context.socket(zmq.REP)
        zap.bind(_ZAP_ENDPOINT)
    router = context.socket(zmq.ROUTER)
    if curve:
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        router.curve_server = True
        router.curve_secretkey = server_secret
        router.curve_publickey = server_public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    threading.Thread(target=_serve, args=(router, zap, client_public and z85.decode(client_public)),
                     daemon=True).start()
    request = msgpack.packb({"v": protocol.PROTOCOL_VERSION, "id": "0a1b2c3d-1", "op": "health", "args": {}})
    print(json.dumps({"endpoint": f"tcp://127.0.0.1:{port}",
                      "server_public": server_public and server_public.decode(),
                      "client_secret": client_secret and client_secret.decode(),
                      "request": base64.b64encode(request).decode()}), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
