"""Receive a checkpoint's images directory as a descriptor, then exec criu reading the images through it.

Usage: images_fd.py SOCKET COMMAND... ; every argument of COMMAND that is exactly @images becomes
/proc/self/fd/N, N the received descriptor. The module opened and checked that directory on descriptors
and hands it over SCM_RIGHTS, so criu reads the directory that was checked, whatever its path names by now.
exec, not fork: criu stays the PID namespace's init. Run it with -I -S: it imports only the standard library.
"""
import os
import socket
import sys

_PLACEHOLDER = "@images"


def main() -> None:
    socket_path, command = sys.argv[1], sys.argv[2:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
        peer.connect(socket_path)
        _, descriptors, _, _ = socket.recv_fds(peer, 1, 1)
    if len(descriptors) != 1:
        sys.exit(f"images_fd: no descriptor came over {socket_path}")
    os.set_inheritable(descriptors[0], True)
    images = f"/proc/self/fd/{descriptors[0]}"
    os.execv(command[0], [images if argument == _PLACEHOLDER else argument for argument in command])


if __name__ == "__main__":
    main()
