"""The Python half of CurveInteropTests: the engine's own link (frontend.py's CURVE ROUTER and ZAP handler,
curve.py's keys and files) over libzmq, for the module's NetMQ client to reach.

    python3 curve_link_peer.py RUN_DIR

Serves as an engine starts: a client keypair issued into RUN_DIR, a server keypair of its own, server.public
written, then one line on stdout, the endpoint. Each line on stdin is the server secret key of a resume: it
closes the link and binds anew with that key and the client key RUN_DIR holds then, and prints the new
endpoint. Exits at the end of stdin. `health` is answered on the socket thread, as the engine answers it;
`generate` is answered with its prompt as the text, so a large request comes back as large.

Needs module/EngineHost on PYTHONPATH.
"""
from __future__ import annotations

import queue
import sys
import threading

from engine_host import curve, protocol
from engine_host.frontend import Frontend


def _answer_locally(request: protocol.Request):
    return protocol.HealthResult("ready", 0, 0.0, 0) if request.op == "health" else None


def _echo(frontend: Frontend, inbox: "queue.SimpleQueue") -> None:
    """The scheduler's part: requests from the inbox, replies through an outbox of this thread."""
    outbox = frontend.connect_outbox()
    while True:
        item = inbox.get()
        if item is None:
            outbox.close_link()
            return
        text = item.request.args.prompt
        result = protocol.GenerateResult(text, [], "length", len(text), 0, 0.0, 0.0)
        outbox.send(item.identity, protocol.encode_final(item.request.id, result))


def _serve(run_dir: str, server: curve.ServerKeys) -> tuple:
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    frontend = Frontend("127.0.0.1", 0, inbox, _answer_locally, curve.link_keys(run_dir, server))
    curve.write_server_public(run_dir, server)
    echo = threading.Thread(target=_echo, args=(frontend, inbox), daemon=True)
    echo.start()
    print(frontend.endpoint, flush=True)
    return frontend, inbox, echo


def _close(frontend: Frontend, inbox: "queue.SimpleQueue", echo: threading.Thread) -> None:
    inbox.put(None)
    echo.join()
    frontend.close()


def main(run_dir: str) -> int:
    curve.require_curve()
    curve.issue_client_keys(run_dir)
    link = _serve(run_dir, curve.new_server_keys())
    for line in sys.stdin:
        _close(*link)
        link = _serve(run_dir, curve.server_keys(line.strip().encode("ascii")))
    _close(*link)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
