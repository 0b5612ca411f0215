"""As vllm/utils/network_utils.py: where the frontend and the EngineCore meet."""
from uuid import uuid4

import zmq

from vllm import envs


def get_open_zmq_ipc_path() -> str:
    return f"ipc://{envs.VLLM_RPC_BASE_PATH}/{uuid4()}"


def make_zmq_socket(ctx: zmq.Context, path: str, socket_type: int, bind: bool | None = None,
                    identity: bytes | None = None, linger: int | None = None) -> zmq.Socket:
    """As vLLM's: ROUTER and PULL bind, the other types connect, unless told."""
    socket = ctx.socket(socket_type)
    if bind is None:
        bind = socket_type not in (zmq.PUSH, zmq.SUB, zmq.XSUB, zmq.DEALER)
    if identity is not None:
        socket.setsockopt(zmq.IDENTITY, identity)
    if linger is not None:
        socket.setsockopt(zmq.LINGER, linger)
    if bind:
        socket.bind(path)
    else:
        socket.connect(path)
    return socket
