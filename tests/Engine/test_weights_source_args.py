"""weights_from_source without torch: argument checks, and the safetensors files the host reads and writes."""
from __future__ import annotations

import importlib.util
import json
import os
import struct

import numpy as np
import pytest

from engine_host import safetensors_files as stf
from engine_host.backends import tiny, torch_backend
from engine_host.options import EngineOptions, FailureCode, StartupError

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def _options(tmp_path, backend, model, **engine_args) -> EngineOptions:
    return EngineOptions(run_dir=str(tmp_path / "run"), backend=backend, model=model,
                         device="cpu", engine_args=engine_args)


def _model_dir(tmp_path, with_safetensors: bool) -> str:
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({
        "model_type": "llama", "vocab_size": 1024, "max_position_embeddings": 1024, "eos_token_id": 2}))
    if with_safetensors:
        stf.write_file(str(path / "model.safetensors"), [stf.TensorSpec("w", "F32", (2,))],
                       lambda spec: np.zeros(2, np.float32))
    return str(path)


def _plan_error(options) -> StartupError:
    with pytest.raises(StartupError) as info:
        (tiny if options.backend == "tiny" else torch_backend).plan(options)
    return info.value


def test_tiny_refuses_weights_from_source_but_takes_false(tmp_path):
    error = _plan_error(_options(tmp_path, "tiny", "tiny-4m", weights_from_source=True))
    assert error.code == FailureCode.BAD_ENGINE_ARGS and "torch" in error.message
    assert tiny.plan(_options(tmp_path, "tiny", "tiny-4m", weights_from_source=False)).backend == "tiny"


def test_torch_refuses_weights_from_source_for_a_preset(tmp_path):
    error = _plan_error(_options(tmp_path, "torch", "llama-tiny", weights_from_source=True))
    assert error.code == FailureCode.BAD_ENGINE_ARGS
    assert "local directory" in error.message and "llama-tiny" in error.message


def test_torch_refuses_weights_from_source_for_a_directory_without_safetensors(tmp_path):
    model = _model_dir(tmp_path, with_safetensors=False)
    error = _plan_error(_options(tmp_path, "torch", model, weights_from_source=True))
    assert error.code == FailureCode.BAD_ENGINE_ARGS and "*.safetensors" in error.message


def test_torch_weights_from_source_must_be_a_bool(tmp_path):
    model = _model_dir(tmp_path, with_safetensors=True)
    error = _plan_error(_options(tmp_path, "torch", model, weights_from_source=1))
    assert error.code == FailureCode.BAD_ENGINE_ARGS and "weights_from_source" in error.message


def test_torch_accepts_weights_from_source_for_a_directory_with_safetensors(tmp_path):
    options = _options(tmp_path, "torch", _model_dir(tmp_path, with_safetensors=True),
                       weights_from_source=True)
    if not HAVE_TORCH:  # the argument passed; what stops the plan is the missing torch
        assert _plan_error(options).code == FailureCode.BACKEND_UNAVAILABLE
        return
    plan = torch_backend.plan(options)
    assert plan.stage_specs[0].config.weights_from_source is True
    without = torch_backend.plan(_options(tmp_path, "torch", options.model))
    explicit_false = torch_backend.plan(_options(tmp_path, "torch", options.model,
                                                 weights_from_source=False))
    assert without.config_hash == explicit_false.config_hash != plan.config_hash


# ---------------------------------------------------------------- safetensors files


def _specs_and_arrays():
    arrays = {
        "model.embed_tokens.weight": np.arange(48, dtype=np.float32).reshape(12, 4),
        "model.layers.0.w": np.arange(10, dtype=np.int64),
        "model.layers.1.w": np.arange(6, dtype=np.uint16).reshape(2, 3),  # BF16-sized elements
        "model.norm.weight": np.ones(4, dtype=np.float32),
        "scalar": np.array(7, dtype=np.int32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    dtypes = {np.float32: "F32", np.int64: "I64", np.uint16: "BF16", np.int32: "I32"}
    specs = [stf.TensorSpec(name, dtypes[a.dtype.type], a.shape) for name, a in arrays.items()]
    return specs, arrays


def _check_layout(path: str) -> None:
    """What the reference reader checks: 8-byte aligned header, tensors back to back up to the end."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    assert n % 8 == 0 and header["__metadata__"] == {"format": "pt"}
    position = 0
    for begin, end in sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__"):
        assert begin == position
        position = end
    assert 8 + n + position == size


def test_sharded_files_round_trip(tmp_path):
    specs, arrays = _specs_and_arrays()
    names = stf.write_sharded(str(tmp_path), specs, lambda spec: arrays[spec.name], 100)
    assert len(names) > 1 and names[0] == f"model-00001-of-{len(names):05d}.safetensors"
    with open(tmp_path / stf.INDEX_FILE) as f:
        index = json.load(f)
    assert set(index["weight_map"]) == set(arrays)
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in arrays.values())
    assert stf.model_files(str(tmp_path)) == [str(tmp_path / n) for n in names]
    for name in names:
        _check_layout(str(tmp_path / name))
    entries = stf.read_directory(str(tmp_path))
    assert set(entries) == set(arrays)
    for name, entry in entries.items():
        assert entry.path == str(tmp_path / index["weight_map"][name])
        assert entry.shape == arrays[name].shape and entry.nbytes == arrays[name].nbytes
        with open(entry.path, "rb") as f:
            f.seek(entry.offset)
            assert f.read(entry.nbytes) == arrays[name].tobytes()


def test_a_tensor_larger_than_a_shard_gets_its_own(tmp_path):
    specs = [stf.TensorSpec(n, "F32", (s,)) for n, s in (("a", 2), ("b", 100), ("c", 2), ("d", 2))]
    assert [[s.name for s in shard] for shard in stf.plan_shards(specs, 16)] == [
        ["a"], ["b"], ["c", "d"]]


def test_without_an_index_every_safetensors_file_counts(tmp_path):
    for name in ("b.safetensors", "a.safetensors"):
        stf.write_file(str(tmp_path / name), [stf.TensorSpec(name[0], "U8", (3,))],
                       lambda spec: b"xyz")
    assert stf.has_safetensors(str(tmp_path)) and not stf.has_safetensors(str(tmp_path / "none"))
    assert set(stf.read_directory(str(tmp_path))) == {"a", "b"}


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(stf.SafetensorsError):
        stf.write_file(str(tmp_path / "x.safetensors"), [stf.TensorSpec("w", "F32", (4,))],
                       lambda spec: b"too short")
    bad = tmp_path / "bad.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 12)
    with pytest.raises(stf.SafetensorsError, match="offsets"):
        stf.read_header(str(bad))
    bad.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(stf.SafetensorsError, match="header length"):
        stf.read_header(str(bad))
    with pytest.raises(stf.SafetensorsError, match="no \\*.safetensors"):
        stf.read_directory(str(tmp_path / "empty-dir"))


def test_an_engine_asked_for_weights_from_source_on_tiny_fails_cleanly(start_engine):
    engine = start_engine("--model", "tiny-4m", "--engine-args", '{"weights_from_source": true}',
                          wait=False)
    assert engine.wait_exit(30) != 0
    with open(engine.path("failed.json")) as f:
        failed = json.load(f)
    assert failed["code"] == "bad_engine_args" and "weights_from_source" in failed["message"]


def test_prepare_reply_reports_what_the_engine_still_holds(start_engine):
    engine = start_engine("--model", "tiny-4m")
    c = engine.client()
    hello = c.call("hello")
    prepared = c.call("prepare_checkpoint")
    assert prepared["state"] == "prepared"
    # tiny drops only its KV caches: the weights stay in host memory
    assert prepared["host_memory_bytes"] == hello["host_memory_bytes"] > 0
    assert prepared["gpu_memory_bytes"] == 0
