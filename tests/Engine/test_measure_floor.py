"""The floor tool's file-system side (the GPU side runs on the GPU host, in bench/gpu-bench.ps1)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ENGINE_ROOT
from engine_host.tools import measure_floor


def test_read_rate_counts_every_byte_of_a_directory_tree(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.img").write_bytes(os.urandom((64 << 20) + (3 << 20)))  # two pieces
    (tmp_path / "two.img").write_bytes(os.urandom(1 << 20) + b"x")
    result = measure_floor.measure_read([str(tmp_path)], cold=True, threads=3)
    assert result["files"] == 2 and result["bytes"] == (68 << 20) + 1 and result["threads"] == 3
    assert result["warm_bytes_per_s"] > 0
    if result["filesystem"] in ("tmpfs", "ramfs"):
        assert result["cold_bytes_per_s"] is None
    else:
        assert result["cold_bytes_per_s"] > 0


def test_a_cold_read_streams_every_byte_of_every_piece(tmp_path):
    sizes = [(64 << 20) + (3 << 20) + 17, 1 << 20, 0]
    for i, size in enumerate(sizes):
        (tmp_path / f"{i}.safetensors").write_bytes(os.urandom(size))
    total, seconds = measure_floor.read_streams(sorted(str(p) for p in tmp_path.iterdir()), 3)
    assert total == sum(sizes) and seconds > 0


def test_cold_and_direct_reads_have_their_own_readers_whatever_the_cpus(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(os.urandom((64 << 20) + (4 << 20)))  # two pieces
    result = measure_floor.measure_read([str(tmp_path)], cold=True, threads=1, cold_threads=4, direct=True)
    assert result["threads"] == 1 and result["cold_threads"] == 4
    if result["filesystem"] in ("tmpfs", "ramfs"):
        assert result["cold_bytes_per_s"] is None and result["direct_bytes_per_s"] is None
    elif "direct_error" not in result:
        assert result["direct_bytes_per_s"] > 0 and result["cold_bytes_per_s"] > 0


def test_the_cold_read_has_as_many_readers_as_the_weight_loader_on_any_host(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    command = [sys.executable, "-m", "engine_host.tools.measure_floor", "--read", str(tmp_path), "--cold"]
    out = subprocess.run(command, cwd=ENGINE_ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["read"]["cold_threads"] == 8


def test_filesystem_type_of_proc_and_of_the_root():
    assert measure_floor.filesystem_type("/proc/self") == "proc"
    assert measure_floor.filesystem_type("/") != "unknown"


def test_command_line_prints_one_json_object(tmp_path):
    (tmp_path / "pages.img").write_bytes(b"\0" * 4096)
    command = [sys.executable, "-m", "engine_host.tools.measure_floor", "--read", str(tmp_path),
               "--drop", str(tmp_path)]
    out = subprocess.run(command, cwd=ENGINE_ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["read"]["bytes"] == 4096 and result["dropped_files"] == 1
