"""What CurveZMQ costs the link, for bench.ps1: a pyzmq ROUTER that echoes each [empty][payload] back, as
the engine's socket thread answers health, plain or a CURVE server with a ZAP handler polled on the same
thread, as the engine's is. The engine itself has no plain link to compare with, on purpose.

    python3 link_echo.py [--curve]

Prints one JSON line, {"endpoint", "server_public", "client_secret"} (the keys null when plain), then
echoes until stdin closes.
"""
import argparse
import json
import sys
import threading

import zmq
from zmq.utils import z85

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
            router.send_multipart(router.recv_multipart())


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
    print(json.dumps({"endpoint": f"tcp://127.0.0.1:{port}",
                      "server_public": server_public and server_public.decode(),
                      "client_secret": client_secret and client_secret.decode()}), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
