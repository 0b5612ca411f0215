"""images_fd.py: criu reads the directory whose descriptor was handed over, not what its path names later."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from conftest import ENGINE_ROOT

_SCRIPT = os.path.join(ENGINE_ROOT, "engine_host", "tools", "images_fd.py")


def test_the_command_gets_the_received_directory_in_place_of_the_placeholder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "pages-1.img").write_bytes(b"checked")
    path = str(tmp_path / "images.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        # The command lists its argument after the handover, when the path names another, empty, one.
        command = ["/bin/sh", "-c", 'echo "$1"; ls "$1"', "sh", "@images"]
        helper = subprocess.Popen([sys.executable, "-I", "-S", _SCRIPT, path, *command],
                                  stdout=subprocess.PIPE, text=True)
        descriptor = os.open(images, os.O_RDONLY | os.O_DIRECTORY)
        images.rename(tmp_path / "moved")
        images.mkdir()
        peer, _ = server.accept()
        with peer:
            socket.send_fds(peer, [b"\1"], [descriptor])
        os.close(descriptor)
        out, _ = helper.communicate(timeout=10)
    assert helper.returncode == 0
    shown, listing = out.splitlines()[0], out.splitlines()[1:]
    assert shown.startswith("/proc/self/fd/") and listing == ["pages-1.img"]


def test_no_descriptor_is_an_error_naming_the_socket(tmp_path):
    path = str(tmp_path / "images.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        helper = subprocess.Popen([sys.executable, "-I", "-S", _SCRIPT, path, "/bin/true", "@images"],
                                  stderr=subprocess.PIPE, text=True)
        peer, _ = server.accept()
        with peer:
            peer.sendall(b"\1")
        _, err = helper.communicate(timeout=10)
    assert helper.returncode != 0 and path in err
