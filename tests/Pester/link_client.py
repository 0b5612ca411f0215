"""A pyzmq client of an engine's link for the Pester tests: sends each op given, then prints what came back
within the timeout as one JSON object, {op: its final or error reply, or null when unanswered}.

    python3 link_client.py ENDPOINT [--keys DIR | --server-key Z85] [--timeout S] OP [OP ...]

--keys DIR         the keys a run directory holds (server.public, client.secret): the owner's view
--server-key Z85   that server public key, with a client keypair made here, which no engine issued
neither            no CURVE at all

It also runs as `python3 -c` (under setpriv, as a user who may not be able to read this file).
"""
import argparse
import json
import os
import sys
import time
import uuid

import msgpack
import zmq

PROTOCOL_VERSION = 2  # docs/protocol.md
ARGUMENTS = {"generate": {"prompt": "let me in", "max_tokens": 4}}


def _read_key(directory: str, name: str) -> bytes:
    with open(os.path.join(directory, name), "rb") as f:
        return f.read().strip()


def _socket(context: zmq.Context, options: argparse.Namespace) -> zmq.Socket:
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    if options.keys:
        secret = _read_key(options.keys, "client.secret")
        socket.curve_serverkey = _read_key(options.keys, "server.public")
        socket.curve_secretkey = secret
        socket.curve_publickey = zmq.curve_public(secret)
    elif options.server_key:
        socket.curve_serverkey = options.server_key.encode("ascii")
        socket.curve_publickey, socket.curve_secretkey = zmq.curve_keypair()
    socket.connect(options.endpoint)
    return socket


def _replies(socket: zmq.Socket, ops: list, timeout_s: float) -> dict:
    # A DEALER without a connection blocks its sends; one the engine's CURVE refused may never get one.
    socket.sndtimeo = int(timeout_s * 1000)
    sent = {}
    replies = dict.fromkeys(ops)
    for op in ops:
        request_id = uuid.uuid4().hex
        sent[request_id] = op
        request = {"v": PROTOCOL_VERSION, "id": request_id, "op": op, "args": ARGUMENTS.get(op, {})}
        try:
            socket.send_multipart([b"", msgpack.packb(request)])
        except zmq.Again:
            return replies
    deadline = time.monotonic() + timeout_s
    while None in replies.values():
        left = deadline - time.monotonic()
        if left <= 0 or not socket.poll(int(left * 1000)):
            break
        reply = msgpack.unpackb(socket.recv_multipart()[-1], raw=False)
        if reply.get("id") in sent and reply.get("kind") in ("final", "error"):
            replies[sent[reply["id"]]] = reply
    return replies


def main(argv: list) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--keys")
    parser.add_argument("--server-key")
    parser.add_argument("--timeout", type=float, default=2.0)
    options = parser.parse_args(argv)
    context = zmq.Context()
    socket = _socket(context, options)
    try:
        print(json.dumps(_replies(socket, options.ops, options.timeout), default=str))
    finally:
        socket.close()
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
