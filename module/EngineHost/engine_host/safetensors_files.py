"""The safetensors file format, read and written without torch or the safetensors package.

A file is: 8 bytes, little-endian u64 N; N bytes of JSON header (UTF-8, space-padded to 8-byte
alignment) mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} and an optional
"__metadata__" map of strings; then the data, where the tensors lie back to back, in offset order,
with no gap, and the last one ends at the end of the file (what the reference reader checks).

The torch backend reads tensors' bytes straight from these files into (pinned) memory when it reloads
weights after a checkpoint; the random-model tool writes sharded model directories with it, one tensor
at a time, so a shard never has to be held in memory whole.
"""
from __future__ import annotations

import glob
import json
import os
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

INDEX_FILE = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit

DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


class SafetensorsError(ValueError):
    pass


@dataclass(frozen=True)
class TensorEntry:
    name: str
    path: str  # the file
    dtype: str  # safetensors dtype name: BF16, F32, ...
    shape: tuple
    offset: int  # absolute byte offset of the data in the file
    nbytes: int


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def read_header(path: str) -> dict:
    """{name: TensorEntry} of one file; raises SafetensorsError if the header is not valid."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise SafetensorsError(f"{path}: shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise SafetensorsError(f"{path}: bad header length {n}")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SafetensorsError(f"{path}: header is not JSON: {exc}")
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    data_start, data_len = 8 + n, size - 8 - n
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = info["dtype"], tuple(int(d) for d in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name!r} has a malformed entry: {info!r}")
        if dtype not in DTYPE_SIZES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
        if not 0 <= begin <= end <= data_len or end - begin != _numel(shape) * DTYPE_SIZES[dtype]:
            raise SafetensorsError(f"{path}: tensor {name!r} has offsets [{begin}, {end}] that do not "
                                   f"fit its shape {list(shape)} of {dtype} or the file")
        entries[name] = TensorEntry(name, path, dtype, shape, data_start + begin, end - begin)
    return entries


def model_files(directory: str) -> list:
    """The safetensors files of a model directory: those its index names, else every *.safetensors."""
    index = os.path.join(directory, INDEX_FILE)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map", {})
        return [os.path.join(directory, name) for name in sorted(set(weight_map.values()))]
    return sorted(glob.glob(os.path.join(glob.escape(directory), "*.safetensors")))


def has_safetensors(directory: str) -> bool:
    return os.path.isdir(directory) and bool(
        glob.glob(os.path.join(glob.escape(directory), "*.safetensors")))


def read_directory(directory: str) -> dict:
    """{name: TensorEntry} over every file of the model directory (the first file naming a tensor wins)."""
    files = model_files(directory)
    if not files:
        raise SafetensorsError(f"{directory} has no *.safetensors files")
    entries: dict = {}
    for path in files:
        for name, entry in read_header(path).items():
            entries.setdefault(name, entry)
    return entries


# ---------------------------------------------------------------- writing

@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * DTYPE_SIZES[self.dtype]


def encode_header(specs: list, metadata: Optional[dict] = None) -> bytes:
    """The 8-byte length and the padded JSON header for tensors laid out in `specs` order."""
    header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for spec in specs:
        header[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape),
                             "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob


def write_file(path: str, specs: list, data: Callable, metadata: Optional[dict] = None) -> int:
    """Write one file: the header, then data(spec) (any bytes-like object of spec.nbytes bytes) for each
    spec in order, one at a time. Returns the bytes written."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SafetensorsError("duplicate tensor names")
    written = 0
    with open(path, "wb") as f:
        head = encode_header(specs, metadata)
        f.write(head)
        written += len(head)
        for spec in specs:
            view = memoryview(data(spec))
            if view.nbytes != spec.nbytes or not view.c_contiguous:
                raise SafetensorsError(f"tensor {spec.name}: {view.nbytes} bytes for a "
                                       f"{list(spec.shape)} {spec.dtype} ({spec.nbytes} bytes)")
            if view.nbytes:
                f.write(view)
            written += view.nbytes
            view.release()
    return written


def plan_shards(specs: list, max_shard_bytes: int) -> list:
    """Split specs, in order, into shards of at most max_shard_bytes of data (a larger tensor alone)."""
    shards, current, size = [], [], 0
    for spec in specs:
        if current and size + spec.nbytes > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(spec)
        size += spec.nbytes
    if current:
        shards.append(current)
    return shards


def write_sharded(directory: str, specs: list, data: Callable, max_shard_bytes: int) -> list:
    """model-0000i-of-0000n.safetensors files plus model.safetensors.index.json; their file names."""
    shards = plan_shards(specs, max_shard_bytes)
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, shard in zip(names, shards):
        write_file(os.path.join(directory, name), shard, data)
        weight_map.update({spec.name: name for spec in shard})
    index = {"metadata": {"total_size": sum(s.nbytes for s in specs)}, "weight_map": weight_map}
    with open(os.path.join(directory, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return names
