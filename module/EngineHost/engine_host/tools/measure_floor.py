"""Measure the physical floor a restore cannot beat on this host, as JSON on stdout.

    python3 -m engine_host.tools.measure_floor [--read PATH ...] [--cold] [--direct] [--threads N]
        [--cold-threads N] [--drop PATH ...] [--h2d-gib 4] [--cuda-init 3]

--read        files or directories (read recursively): their bytes read with the page cache warm (a first
              pass warms it, the second is timed) and, with --cold, again after dropping them from the page
              cache (fsync, then posix_fadvise DONTNEED per file). A memory-backed file system (tmpfs,
              ramfs) has no cold read: its pages are the file, so "cold" is null there. The bytes are read
              in 64 MiB pieces by --threads threads at once (default: the CPUs, at most 16), as the
              engine's weight loader and a parallel restore would: one reader alone does not reach the
              host's memory bandwidth, and the floor is what the host can do. The cold read is the
              weight prefetch's: --cold-threads readers (default 8, whatever the CPUs: a reader waiting
              on the disk needs no core, and a disk reaches its rate only with requests in flight), each
              reading a 64 MiB piece front to back in 1 MiB reads through a file description of its
              own, so the kernel reads ahead for each; one 64 MiB read per piece, or readers sharing
              a description, got less from the same disk (docs/performance.md).
--direct      with --cold: also the same pieces read with O_DIRECT (no page cache, no readahead, 4 MiB
              reads) by --cold-threads readers: what the device itself gives that many requests in
              flight; null where the file system refuses O_DIRECT (tmpfs).
--drop        only drop these files or directories from the page cache (to time a restore from a cold store).
--h2d-gib     pinned and pageable host-to-GPU copy rates (torch, best of 3 copies of that many GiB).
--cuda-init   seconds a fresh process spends in cuInit (libcuda via ctypes), the median of that many runs:
              what a design that loads the driver per call (a cuda-checkpoint process per PID and step)
              pays each time.

The restore floor is then image bytes / read rate + GPU bytes / pinned host-to-GPU rate (docs/performance.md).
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

_CHUNK = 64 << 20
_STREAM_READ = 1 << 20  # one read of a cold stream, as the weight prefetch reads
_DIRECT_READ = 4 << 20  # one O_DIRECT read: a multiple of any block size
_COLD_THREADS = 8
_MEMORY_FILESYSTEMS = {"tmpfs", "ramfs"}
_CUINIT_PROBE = ("import ctypes, time\n"
                 "started = time.perf_counter()\n"
                 "status = ctypes.CDLL('libcuda.so.1').cuInit(0)\n"
                 "print(time.perf_counter() - started if status == 0 else -status)\n")


def _files(paths: list) -> list:
    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                found.extend(os.path.join(root, n) for n in sorted(names))
        else:
            found.append(path)
    return [f for f in found if os.path.isfile(f) and not os.path.islink(f)]


def filesystem_type(path: str) -> str:
    """The type of the mount holding path: the longest mount point of /proc/self/mountinfo that prefixes
    it."""
    path = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mount_point = fields[4]
            fs_type = fields[fields.index("-") + 1]
            inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, fs_type
    return kind


def default_threads() -> int:
    return max(1, min(16, os.cpu_count() or 1))


def _read_pieces(pieces: "queue.SimpleQueue", buffer: bytearray, counts: list) -> None:
    view = memoryview(buffer)
    fds: dict = {}
    total = 0
    try:
        while True:
            try:
                name, offset = pieces.get_nowait()
            except queue.Empty:
                break
            fd = fds.get(name)
            if fd is None:
                fd = fds[name] = os.open(name, os.O_RDONLY)
            total += os.preadv(fd, [view], offset)
    finally:
        for fd in fds.values():
            os.close(fd)
        counts.append(total)


def _pieces(files: list) -> "queue.SimpleQueue":
    """(file, offset) of every 64 MiB piece of the files, for the readers to take in turn."""
    pieces: "queue.SimpleQueue" = queue.SimpleQueue()
    for name in files:
        for offset in range(0, os.path.getsize(name), _CHUNK):
            pieces.put((name, offset))
    return pieces


def _read_all(files: list, threads: int) -> tuple:
    """Every byte of the files, read by `threads` threads in 64 MiB pieces (preadv releases the GIL)."""
    pieces = _pieces(files)
    counts: list = []
    # The buffers are made (and zero-filled) before the clock starts: 16 x 64 MiB of page faults would
    # otherwise count as reading, a third of the time for a 2 GB image.
    buffers = [bytearray(_CHUNK) for _ in range(threads)]
    readers = [threading.Thread(target=_read_pieces, args=(pieces, buffer, counts)) for buffer in buffers]
    started = time.perf_counter()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return sum(counts), time.perf_counter() - started


def read_streams(files: list, threads: int, flags: int = 0, read: int = _STREAM_READ) -> tuple:
    """Every byte of the files by `threads` readers, in 64 MiB pieces each read front to back in `read`-byte
    reads through an open file description of its own: one sequential stream per reader, which the kernel
    reads ahead for, as Restore-EngineCheckpoint's weight prefetch reads. With O_DIRECT in `flags`, no page
    cache and no readahead: what the device itself gives that many readers."""
    pieces = _pieces(files)
    counts: list = []
    failures: list = []

    def reader(buffer) -> None:
        total = 0
        try:
            while True:
                try:
                    name, offset = pieces.get_nowait()
                except queue.Empty:
                    break
                fd = os.open(name, os.O_RDONLY | flags)
                try:
                    end = offset + _CHUNK
                    while offset < end:
                        n = os.preadv(fd, [buffer], offset)
                        if n <= 0:
                            break
                        offset += n
                        total += n
                finally:
                    os.close(fd)
        except OSError as exc:
            failures.append(exc)
        counts.append(total)

    buffers = [mmap.mmap(-1, read) for _ in range(threads)]  # page-aligned, as O_DIRECT needs
    readers = [threading.Thread(target=reader, args=(buffer,)) for buffer in buffers]
    started = time.perf_counter()
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return sum(counts), seconds


def drop_from_page_cache(files: list) -> None:
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _rate(total: int, seconds: float):
    return round(total / seconds) if seconds else None


def measure_read(paths: list, cold: bool, threads: int, cold_threads: int = _COLD_THREADS,
                 direct: bool = False) -> dict:
    files = _files(paths)
    fs_type = filesystem_type(paths[0])
    _read_all(files, threads)
    total, seconds = _read_all(files, threads)
    result = {"paths": paths, "filesystem": fs_type, "files": len(files), "threads": threads, "bytes": total,
              "warm_s": round(seconds, 4), "warm_bytes_per_s": _rate(total, seconds),
              "cold_threads": cold_threads, "cold_s": None, "cold_bytes_per_s": None,
              "direct_s": None, "direct_bytes_per_s": None}
    if cold and fs_type not in _MEMORY_FILESYSTEMS:
        drop_from_page_cache(files)
        total, seconds = read_streams(files, cold_threads)
        result.update(cold_s=round(seconds, 4), cold_bytes_per_s=_rate(total, seconds))
        if direct:
            try:
                total, seconds = read_streams(files, cold_threads, os.O_DIRECT, _DIRECT_READ)
                result.update(direct_s=round(seconds, 4), direct_bytes_per_s=_rate(total, seconds))
            except OSError as exc:  # EINVAL: this file system does not do O_DIRECT
                result["direct_error"] = str(exc)
    return result


def measure_host_to_gpu(gib: float) -> dict:
    import torch

    size = int(gib * (1 << 30))
    device = torch.empty(size, dtype=torch.uint8, device="cuda")
    rates = {}
    for kind, host in (("pinned", torch.empty(size, dtype=torch.uint8, pin_memory=True)),
                       ("pageable", torch.empty(size, dtype=torch.uint8))):
        host.fill_(1)
        device.copy_(host, non_blocking=True)
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            device.copy_(host, non_blocking=True)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        rates[f"{kind}_bytes_per_s"] = round(size / best)
        del host
    return {"bytes": size, "device": torch.cuda.get_device_name(0), **rates}


def measure_cuda_init(runs: int) -> dict:
    seconds = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-I", "-S", "-c", _CUINIT_PROBE], capture_output=True,
                             text=True, timeout=120, check=True).stdout.strip()
        value = float(out)
        if value < 0:
            raise RuntimeError(f"cuInit failed with CUDA error {int(-value)}")
        seconds.append(value)
    return {"runs_s": [round(s, 4) for s in seconds], "median_s": round(statistics.median(seconds), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m engine_host.tools.measure_floor")
    parser.add_argument("--read", nargs="+", metavar="PATH")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--cold-threads", type=int, default=_COLD_THREADS)
    parser.add_argument("--drop", nargs="+", metavar="PATH")
    parser.add_argument("--h2d-gib", type=float)
    parser.add_argument("--cuda-init", type=int, metavar="RUNS")
    args = parser.parse_args(argv)
    result = {}
    if args.read:
        result["read"] = measure_read(args.read, args.cold, args.threads, args.cold_threads, args.direct)
    if args.drop:
        dropped = _files(args.drop)
        drop_from_page_cache(dropped)
        result["dropped_files"] = len(dropped)
    if args.h2d_gib:
        result["host_to_gpu"] = measure_host_to_gpu(args.h2d_gib)
    if args.cuda_init:
        result["cuda_init"] = measure_cuda_init(args.cuda_init)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
