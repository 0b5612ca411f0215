"""Cold reads of a directory of weight files in the patterns the weight prefetch was chosen among, each after
the files are dropped from the page cache (fsync, POSIX_FADV_DONTNEED); one JSON line each, on stdout.

    PYTHONPATH=<module>/EngineHost python3 bench/read_patterns.py [--warm] DIR PATTERN[:READERS] ...

direct      O_DIRECT, no page cache and no readahead: the disk's own rate (4 MiB reads)
chunks      the prefetch's: 64 MiB chunks, each read front to back in 1 MiB reads through an open file
            description of its own
shared      1 MiB pieces handed out in turn, every reader through one description per file (one readahead
            state for all)
willneed    posix_fadvise(WILLNEED) on every file, then one reader reads them: until every byte was read
loader      the torch engine's weight loader at resume: pieces read in 32 MiB reads, each through a
            description of its own (the engine reads each tensor so, largest first)

--warm reads the files as the page cache has them, without dropping them first.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time

from engine_host.tools.measure_floor import drop_from_page_cache, read_streams

READ = 1 << 20


def weight_files(directory: str) -> list:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".safetensors"))


def pieces(files: list, size: int) -> "queue.SimpleQueue":
    q: "queue.SimpleQueue" = queue.SimpleQueue()
    for name in files:
        for offset in range(0, os.path.getsize(name), size):
            q.put((name, offset))
    return q


def timed(readers: int, work) -> float:
    threads = [threading.Thread(target=work) for _ in range(readers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def chunks(files: list, readers: int, flags: int = 0, read: int = READ) -> float:
    """The prefetch's pattern, as the floor tool reads cold (measure_floor.read_streams)."""
    return read_streams(files, readers, flags, read)[1]


def shared(files: list, readers: int) -> float:
    work_queue, fds = pieces(files, READ), {name: os.open(name, os.O_RDONLY) for name in files}

    def work() -> None:
        buffer = bytearray(READ)
        while True:
            try:
                name, offset = work_queue.get_nowait()
            except queue.Empty:
                return
            os.preadv(fds[name], [buffer], offset)
    try:
        return timed(readers, work)
    finally:
        for fd in fds.values():
            os.close(fd)


def willneed(files: list, readers: int) -> float:
    started = time.perf_counter()
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        os.close(fd)
    return chunks(files, 1) + (time.perf_counter() - started)


PATTERNS = {
    "direct": lambda files, readers: chunks(files, readers, os.O_DIRECT, 4 << 20),
    "chunks": chunks,
    "shared": shared,
    "willneed": willneed,
    "loader": lambda files, readers: chunks(files, readers, read=32 << 20),
}


def main(argv: list) -> int:
    warm = argv[0] == "--warm"
    argv = argv[1:] if warm else argv
    files = weight_files(argv[0])
    total = sum(os.path.getsize(f) for f in files)
    for spec in argv[1:]:
        name, _, count = spec.partition(":")
        readers = 1 if name == "willneed" else int(count or 8)
        if not warm:
            drop_from_page_cache(files)
        seconds = PATTERNS[name](files, readers)
        print(json.dumps({"pattern": name, "readers": readers, "bytes": total, "seconds": round(seconds, 3),
                          "bytes_per_s": round(total / seconds)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
