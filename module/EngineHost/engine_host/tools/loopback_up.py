"""Bring the loopback interface of this network namespace up (what `ip link set lo up` does).

A replica is restored into a fresh network namespace, whose lo starts down; CRIU probes TCP repair
over it before restoring anything. Plain ioctls, so the restore needs no iproute2 on the host.
Run it with -I -S: it imports nothing beyond the standard library.
"""
import fcntl
import socket
import struct

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: the interface name, then ifr_flags in the 24-byte union


def main() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        _, flags = struct.unpack(_IFREQ, fcntl.ioctl(control, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))
        fcntl.ioctl(control, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


if __name__ == "__main__":
    main()
