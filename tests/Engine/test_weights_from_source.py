"""weights_from_source with the torch backend, and the random-model tool. Skipped without torch and
transformers; the CUDA tests skip without a GPU.

A model directory written by the tool holds the preset's own weights; with weights_from_source the engine
drops them at prepare_checkpoint and reads them back from the directory's safetensors at resume, with the
same greedy output as before.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine_host import safetensors_files as stf  # noqa: E402
from engine_host.backends import torch_backend  # noqa: E402
from engine_host.options import EngineOptions  # noqa: E402
from engine_host.sampling import SamplingParams  # noqa: E402
from engine_host.stage import NewSequence, SeqInput, StepRequest  # noqa: E402
from engine_host.tools import write_random_model  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
PROMPT_IDS = [[72, 101, 108, 108, 111], [1, 2, 3, 4, 5, 6, 7, 8, 9], [50, 60]]
PROMPTS = ["Hello", "checkpoint", "restore the weights"]
SOURCE = '{"weights_from_source": true}'


def _write_model(tmp_path, preset="llama-tiny", device="cpu", dtype="float32",
                 max_shard_bytes=1_000_000) -> str:
    out = str(tmp_path / f"{preset}-{device}-{dtype}")
    assert write_random_model.main(["--preset", preset, "--out", out, "--device", device, "--dtype",
                                    dtype, "--max-shard-bytes", str(max_shard_bytes)]) == 0
    return out


def _stage(tmp_path, model, device="cpu", dtype="auto", **engine_args):
    from engine_host.backends import torch_stage

    plan = torch_backend.plan(EngineOptions(
        run_dir=str(tmp_path), backend="torch", model=model, device=device, dtype=dtype,
        max_model_len=256, engine_args=engine_args))
    return torch_stage.build_stage(plan.stage_specs[0])


def _greedy(stage, prompts, steps, first_id=0):
    seqs = [SeqInput(first_id + i, ids, 0, NewSequence(len(ids) + 64, SamplingParams()))
            for i, ids in enumerate(prompts)]
    out = [[t] for t in stage.step(StepRequest(seqs)).tokens]
    for n in range(steps - 1):
        step = [SeqInput(first_id + i, [out[i][-1]], len(ids) + n) for i, ids in enumerate(prompts)]
        for i, t in enumerate(stage.step(StepRequest(step)).tokens):
            out[i].append(t)
    stage.step(StepRequest([], free=[first_id + i for i in range(len(prompts))]))
    return out


def _same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name


# ---------------------------------------------------------------- the tool


def test_tool_writes_a_sharded_directory_with_the_presets_weights(tmp_path):
    model_dir = _write_model(tmp_path)
    names = sorted(os.listdir(model_dir))
    shards = [n for n in names if n.endswith(".safetensors")]
    assert "config.json" in names and stf.INDEX_FILE in names and len(shards) > 1
    assert not [n for n in os.listdir(tmp_path) if ".partial-" in n]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model_type"] == "llama" and config["vocab_size"] == 1024

    preset = _stage(tmp_path, "llama-tiny")
    loaded = _stage(tmp_path, model_dir)  # through transformers' from_pretrained and the index
    _same_weights(preset._model, loaded._model)
    assert _greedy(loaded, PROMPT_IDS, 8) == _greedy(preset, PROMPT_IDS, 8)

    if importlib.util.find_spec("safetensors") is not None:  # the reference reader agrees
        from safetensors import safe_open

        expected = preset._model.state_dict()
        seen = set()
        for shard in shards:
            with safe_open(os.path.join(model_dir, shard), framework="pt", device="cpu") as f:
                assert f.metadata() == {"format": "pt"}
                for key in f.keys():
                    assert torch.equal(f.get_tensor(key), expected[key]), key
                    seen.add(key)
        assert seen == set(expected)


def test_tool_refuses_an_existing_directory(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit):
        write_random_model.main(["--preset", "llama-tiny", "--out", str(tmp_path / "taken")])


# ---------------------------------------------------------------- the stage


def test_stage_releases_and_reloads_its_weights_on_cpu(tmp_path):
    model_dir = _write_model(tmp_path)
    stage = _stage(tmp_path, model_dir, weights_from_source=True)
    shapes = {n: (p.shape, p.dtype) for n, p in stage._model.named_parameters()}
    held = stage.report()["host_memory_bytes"]
    before = _greedy(stage, PROMPT_IDS, 8)
    for _ in range(2):  # a second checkpoint of a resumed engine works the same
        stage.release()
        assert all(p.numel() == 0 for p in stage._model.parameters())
        assert stage.report()["host_memory_bytes"] == 0 < held
        assert list(stage.reacquire()) == ["weights", "kv_pool"]
        assert {n: (p.shape, p.dtype) for n, p in stage._model.named_parameters()} == shapes
        assert stage.report()["host_memory_bytes"] == held
        assert _greedy(stage, PROMPT_IDS, 8) == before


def test_stage_without_weights_from_source_keeps_its_weights(tmp_path):
    stage = _stage(tmp_path, _write_model(tmp_path))
    stage.release()
    assert all(p.numel() > 0 for p in stage._model.parameters())
    assert list(stage.reacquire()) == ["kv_pool"]


# ---------------------------------------------------------------- the engine


def _texts(client):
    return [client.generate(p, max_tokens=12, ignore_eos=True)["text"] for p in PROMPTS]


def _prepare(engine) -> dict:
    reply = engine.client().call("prepare_checkpoint", timeout=120)
    assert reply["kind"] == "final" and reply["state"] == "prepared", reply
    while os.path.exists(engine.path("ready.json")):
        time.sleep(0.02)
    return reply


def _resume(engine) -> dict:
    engine.write_resume(port=0)
    deadline = time.monotonic() + 300
    while not os.path.exists(engine.path("ready.json")):
        assert engine.proc.poll() is None, engine.log()
        assert time.monotonic() < deadline, engine.log()
        time.sleep(0.05)
    return engine.wait_ready()


def test_engine_on_cpu_releases_and_reloads_weights(start_engine, tmp_path):
    model_dir = _write_model(tmp_path)
    engine = start_engine("--backend", "torch", "--device", "cpu", "--max-model-len", "256",
                          "--model", model_dir, "--engine-args", SOURCE)
    c = engine.client()
    hello = c.call("hello")
    assert hello["host_memory_bytes"] > 0 and hello["gpu_memory_bytes"] == 0
    before = _texts(c)
    prepared = _prepare(engine)
    assert prepared["host_memory_bytes"] == 0 and prepared["gpu_memory_bytes"] == 0
    ready = _resume(engine)
    assert list(ready["phases"]) == ["resume_reacquire", "resume_weights", "resume_kv_pool",
                                     "resume_canary", "resume_bind"]
    c2 = engine.client()
    assert _texts(c2) == before
    assert c2.call("hello")["host_memory_bytes"] == hello["host_memory_bytes"]
    assert "weights reloaded from safetensors" in engine.log()


def test_engine_without_weights_from_source_reports_its_weights_at_prepare(start_engine):
    engine = start_engine("--backend", "torch", "--device", "cpu", "--model", "llama-tiny")
    prepared = _prepare(engine)
    assert prepared["host_memory_bytes"] > 0  # the KV pool is gone, the weights stay
    assert "resume_weights" not in _resume(engine)["phases"]


@needs_cuda
def test_tool_on_cuda_writes_the_presets_cuda_weights(tmp_path):
    model_dir = _write_model(tmp_path, device="cuda", dtype="bfloat16")
    preset = _stage(tmp_path, "llama-tiny", device="cuda", enforce_eager=True)
    loaded = _stage(tmp_path, model_dir, device="cuda", enforce_eager=True)
    _same_weights(preset._model, loaded._model)


@needs_cuda
def test_stage_on_cuda_reloads_its_weights_at_every_resume(tmp_path):
    """Each reload takes new loader streams from torch's round-robin pool while CUDA graphs are captured:
    enough reloads go round the whole pool, and no loader may ever share the capture's stream."""
    model_dir = _write_model(tmp_path, device="cuda", dtype="bfloat16")
    stage = _stage(tmp_path, model_dir, device="cuda", weights_from_source=True)
    before = _greedy(stage, PROMPT_IDS, 8)
    for _ in range(6):
        stage.release()
        assert list(stage.reacquire())[:2] == ["weights", "kv_pool"]
        assert _greedy(stage, PROMPT_IDS, 8) == before


@needs_cuda
def test_engine_on_cuda_drops_weights_from_the_gpu_and_reloads_them(start_engine, tmp_path):
    model_dir = _write_model(tmp_path, preset="llama-1b", device="cuda", dtype="bfloat16",
                             max_shard_bytes=1_000_000_000)
    engine = start_engine("--backend", "torch", "--model", model_dir, "--max-model-len", "512",
                          "--engine-args", '{"weights_from_source": true, "max_num_seqs": 8}',
                          wait=False)
    engine.wait_ready(timeout=300)  # 2.2 GB through from_pretrained
    c = engine.client()
    hello = c.call("hello")
    assert hello["device"].startswith("cuda") and hello["dtype"] == "bfloat16"
    weight_bytes = 1_100_048_384 * 2  # llama-1b's parameters in bfloat16
    assert hello["gpu_memory_bytes"] > weight_bytes
    before = _texts(c)
    prepared = _prepare(engine)
    assert prepared["gpu_memory_bytes"] < weight_bytes // 10, prepared
    ready = _resume(engine)
    phases = list(ready["phases"])
    assert phases[:3] == ["resume_reacquire", "resume_weights", "resume_kv_pool"]
    assert "resume_cuda_graph" in phases
    c2 = engine.client()
    assert _texts(c2) == before
    assert c2.call("hello")["gpu_memory_bytes"] > weight_bytes
    print(f"\nllama-1b weights_from_source resume phases: {ready['phases']}; "
          f"GPU bytes at prepare {prepared['gpu_memory_bytes']}, serving {hello['gpu_memory_bytes']}")
