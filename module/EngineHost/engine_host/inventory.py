"""What the engine's process tree holds that a CRIU dump cannot carry, looked at before prepare_checkpoint
releases anything; and the versions and environment a checkpoint records.

It follows vLLM's snapshot runtime (vllm/snapshot/runtime.py, LocalSnapshotTools: `_descriptor_inventory`,
`_validate_tcp_connections`, `inventory`, `_torch_identity`, `_environment_identity`), which refuses a tree
holding io_uring or an established TCP connection to a peer outside the tree. Here, each refused thing is
named with its process and descriptor:

- io_uring instances (`anon_inode:[io_uring]`): CRIU cannot dump them.
- established TCP connections (/proc/<root>/net/tcp and tcp6, state 01) held by the tree whose other end is
  not held by the tree too. A connection between two processes of the tree is let through, as vLLM does;
  the link's own connections (accepted on its listening port) are let through too, since prepare closes
  them before the dump.
- connected unix sockets whose peer is not held by the tree. /proc/net/unix lists no peer, so the peers
  come from the kernel's sock_diag (NETLINK_SOCK_DIAG, UNIX_DIAG_PEER), what `ss -xp` reads; where that is
  not available the check is skipped and says so (`unix_peers_visible` false).
- files under /dev/shm open or mapped: CRIU reopens a linked file by path at restore, where it may be gone
  or shared with the engine the checkpoint was taken from. An unlinked one ("(deleted)", such as the POSIX
  semaphore multiprocessing makes and unlinks at once) CRIU carries in the image as a ghost file, up to its
  ghost limit (1 MiB by default); only a bigger one is refused.

The GPUs each process holds open (/dev/nvidia<minor>, named by the driver's
/proc/driver/nvidia/gpus/*/information) are recorded, not refused: the module restores a tree on several
GPUs through the driver's checkpoint API (the vllm backend refuses several GPUs by its parallel sizes).

Everything is read from /proc as the engine's own user, which owns every process of its tree.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import ipaddress
import os
import platform
import socket
import struct
from dataclasses import dataclass, field
from typing import Optional

IO_URING = "anon_inode:[io_uring]"
SHM = "/dev/shm/"
DELETED = " (deleted)"
GHOST_LIMIT = 1 << 20  # criu's default --ghost-limit
ENVIRONMENT_PREFIXES = ("VLLM_", "CUDA_", "NCCL_", "TORCH_", "TRITON_")  # runtime.py _environment_identity
VERSION_PACKAGES = ("numpy", "torch", "vllm")
# What each backend runs on: upgrading a package a backend never imports refuses none of its checkpoints.
BACKEND_PACKAGES = {"tiny": ("numpy",), "torch": ("numpy", "torch"), "vllm": ("torch", "vllm")}

_SHM_REASON = "a file in /dev/shm is reopened by path at restore, where it may be gone or another engine's"
_TCP_ESTABLISHED = "01"
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_UDIAG_SHOW_PEER = 0x4
_UNIX_DIAG_PEER = 2


@dataclass
class Descriptor:
    pid: int
    role: str
    fd: str  # "fd 7", or "mapping" for a mapped file

    def __str__(self) -> str:
        return f"{self.role} (pid {self.pid}) {self.fd}"


@dataclass
class TreeInventory:
    processes: list = field(default_factory=list)  # [{pid, role, gpu_uuids}]
    problems: list = field(default_factory=list)  # one line per thing a dump cannot carry
    unix_peers_visible: bool = True
    versions: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)

    def refusal(self) -> Optional[str]:
        if not self.problems:
            return None
        return ("its process tree holds what CRIU cannot carry: " + "; ".join(self.problems)
                + ". Close it, or start the engine without it")

    def to_dict(self) -> dict:
        return {"processes": self.processes, "unix_peers_visible": self.unix_peers_visible,
                "versions": self.versions, "environment": self.environment}


def descendants(root: int, proc: str = "/proc") -> list:
    """Every live descendant of root, parents before children, by /proc."""
    children: dict = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, frontier = [], [root]
    while frontier:
        nxt = []
        for pid in frontier:
            for child in sorted(children.get(pid, [])):
                found.append(child)
                nxt.append(child)
        frontier = nxt
    return found


def take(roles: list, link_port: Optional[int], environment: dict, packages: tuple = (),
         proc: str = "/proc") -> TreeInventory:
    """The inventory of the tree: `roles` is [{pid, role}] with the root (the frontend) first; `environment`
    is the one the engine was started with; `packages` those whose versions are recorded."""
    inventory = TreeInventory(versions=runtime_versions(packages),
                              environment=environment_identity(environment))
    sockets: dict = {}  # inode -> Descriptor
    gpus = _gpu_minors(proc)
    for pid, role in ((r["pid"], r["role"]) for r in roles):
        targets = _descriptors(pid, proc)
        uuids = sorted({gpus.get(target[len("/dev/nvidia"):], f"minor {target[len('/dev/nvidia'):]}")
                        for target in targets.values()
                        if target.startswith("/dev/nvidia") and target[len("/dev/nvidia"):].isdigit()})
        inventory.processes.append({"pid": pid, "role": role, "gpu_uuids": uuids})
        for fd, target in targets.items():
            where = Descriptor(pid, role, f"fd {fd}")
            if target == IO_URING:
                inventory.problems.append(f"{where} is an io_uring instance (CRIU cannot dump io_uring)")
            elif target.startswith(SHM) and not _carried_as_ghost(target, _size(f"{proc}/{pid}/fd/{fd}")):
                inventory.problems.append(f"{where} has {target} open ({_shm_reason(target)})")
            elif target.startswith("socket:[") and target.endswith("]"):
                sockets.setdefault(int(target[len("socket:["):-1]), where)
        for path, size in _shm_mappings(pid, proc):
            if not _carried_as_ghost(path, size):
                where = Descriptor(pid, role, "mapping")
                inventory.problems.append(f"{where} maps {path} ({_shm_reason(path)})")
    root = roles[0]["pid"]
    inventory.problems.extend(_outside_tcp(sockets, _tcp_established(root, proc), link_port))
    peers = unix_peers()
    if peers is None:
        inventory.unix_peers_visible = False
    else:
        inventory.problems.extend(
            f"{sockets[inode]} is a unix socket connected to a process outside the engine's tree (peer "
            f"socket {peer})" for inode, peer in sorted(peers.items())
            if inode in sockets and peer and peer not in sockets)
    return inventory


def _descriptors(pid: int, proc: str) -> dict:
    """fd number -> link target, for the fds still open while they are read."""
    targets = {}
    try:
        fds = os.listdir(f"{proc}/{pid}/fd")
    except OSError:
        return targets
    for fd in sorted(fds, key=int):
        try:
            targets[fd] = os.readlink(f"{proc}/{pid}/fd/{fd}")
        except OSError:
            continue
    return targets


def _shm_mappings(pid: int, proc: str) -> list:
    """(path, bytes mapped) of each file under /dev/shm the process maps, its mappings' lengths summed."""
    sizes: dict = {}
    try:
        with open(f"{proc}/{pid}/maps") as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith(SHM):
                    start, end = (int(bound, 16) for bound in fields[0].split("-"))
                    path = fields[5].rstrip("\n")
                    sizes[path] = sizes.get(path, 0) + end - start
    except OSError:
        pass
    return sorted(sizes.items())


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _carried_as_ghost(path: str, size: int) -> bool:
    return path.endswith(DELETED) and size <= GHOST_LIMIT


def _shm_reason(path: str) -> str:
    if path.endswith(DELETED):
        return f"an unlinked file over CRIU's ghost limit of {GHOST_LIMIT >> 20} MiB cannot go into the image"
    return _SHM_REASON


def _gpu_minors(proc: str) -> dict:
    """Device minor (as in /dev/nvidia<minor>) -> GPU UUID, from the driver's /proc files."""
    minors = {}
    base = f"{proc}/driver/nvidia/gpus"
    try:
        buses = os.listdir(base)
    except OSError:
        return minors
    for bus in buses:
        facts = {}
        try:
            with open(f"{base}/{bus}/information") as f:
                for line in f:
                    name, _, value = line.partition(":")
                    facts[name.strip()] = value.strip()
        except OSError:
            continue
        if "Device Minor" in facts and "GPU UUID" in facts:
            minors[facts["Device Minor"]] = facts["GPU UUID"]
    return minors


def _address(raw: str) -> str:
    """/proc/net/tcp's "0100007F:1F90" (each 32-bit word in host byte order) as "127.0.0.1:8080"."""
    host, port = raw.split(":")
    packed = b"".join(struct.pack("<I", int(host[i:i + 8], 16)) for i in range(0, len(host), 8))
    ip = ipaddress.ip_address(packed)
    return f"[{ip}]:{int(port, 16)}" if ip.version == 6 else f"{ip}:{int(port, 16)}"


def _tcp_established(root: int, proc: str) -> list:
    """(family, local, remote, inode) of every established TCP socket in the root's network namespace."""
    records = []
    for family in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/{root}/net/{family}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _TCP_ESTABLISHED:
                records.append((family, fields[1], fields[2], int(fields[9])))
    return records


def _outside_tcp(sockets: dict, records: list, link_port: Optional[int]) -> list:
    owned = [r for r in records if r[3] in sockets]
    ends = {(family, local, remote) for family, local, remote, _ in owned}
    problems = []
    for family, local, remote, inode in owned:
        if link_port is not None and int(local.split(":")[1], 16) == link_port:
            continue  # a client of the link: prepare closes it before the dump
        if (family, remote, local) not in ends:
            problems.append(f"{sockets[inode]} is a TCP connection from {_address(local)} to "
                            f"{_address(remote)}, whose other end is outside the engine's tree (CRIU cannot "
                            "carry it)")
    return problems


def unix_peers() -> Optional[dict]:
    """Inode -> peer inode of every unix socket of this network namespace, from sock_diag; None where the
    kernel does not answer (no unix_diag)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as s:
            request = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, _UDIAG_SHOW_PEER, 0, 0)
            s.send(struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY,
                               _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + request)
            return _read_unix_peers(s)
    except OSError:
        return None


def _read_unix_peers(s: socket.socket) -> Optional[dict]:
    peers = {}
    while True:
        data = s.recv(1 << 16)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == _NLMSG_DONE:
                return peers
            if kind == _NLMSG_ERROR or length < 16:
                return None
            inode = struct.unpack_from("=I", data, offset + 16 + 4)[0]
            attribute = offset + 16 + 16
            end = offset + length
            while attribute + 4 <= end:
                attr_length, attr_kind = struct.unpack_from("=HH", data, attribute)
                if attr_length < 4:
                    break
                if attr_kind == _UNIX_DIAG_PEER:
                    peers[inode] = struct.unpack_from("=I", data, attribute + 4)[0]
                attribute += (attr_length + 3) & ~3
            offset += (length + 3) & ~3
        if not data:
            return peers


# ---------------------------------------------------------------- versions and environment

def runtime_versions(packages: tuple = VERSION_PACKAGES) -> dict:
    """Python and the installed versions of `packages` (torch with the CUDA runtime it was built for), read
    from package metadata without importing them (so `--describe-backends` reports the same for the module
    to compare at restore). Packages that are not installed are left out."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    cuda = _torch_cuda() if "torch" in packages else None
    if cuda:
        versions["torch_cuda"] = cuda
    return versions


def _torch_cuda() -> Optional[str]:
    """`cuda` of torch/version.py, parsed rather than imported (runtime.py _torch_identity)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        return None
    try:
        with open(os.path.join(next(iter(locations)), "version.py")) as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError):
        return None
    for statement in tree.body:
        target = statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
            else statement.target if isinstance(statement, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "cuda" and statement.value is not None:
            try:
                value = ast.literal_eval(statement.value)
            except ValueError:
                return None
            return str(value) if value else None
    return None


def environment_identity(environment: dict) -> dict:
    """The names of the VLLM_/CUDA_/NCCL_/TORCH_/TRITON_ variables and the SHA-256 of them with their values:
    each `NAME=VALUE\\n` in ordinal order of the names, UTF-8 (the module computes the same of its own session
    at restore). The values themselves are not recorded: they may be secrets."""
    selected = sorted((name, value) for name, value in environment.items()
                      if name.startswith(ENVIRONMENT_PREFIXES))
    digest = hashlib.sha256("".join(f"{name}={value}\n" for name, value in selected).encode("utf-8"))
    return {"names": [name for name, _ in selected], "sha256": digest.hexdigest()}
