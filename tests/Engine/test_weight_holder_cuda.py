"""The weight holder on a GPU: a real holder process, and torch stages and engines that map their released
weights from it (or fall back to the files). Skipped without torch, transformers or a CUDA device."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from conftest import ENGINE_ROOT, wait_for  # noqa: E402
from engine_host import cuda_vmm, weight_share  # noqa: E402
from engine_host import safetensors_files as stf  # noqa: E402
from engine_host.backends import torch_backend, torch_weights  # noqa: E402
from engine_host.options import EngineOptions  # noqa: E402
from engine_host.sampling import SamplingParams  # noqa: E402
from engine_host.stage import NewSequence, SeqInput, StepRequest  # noqa: E402
from engine_host.tools import write_random_model  # noqa: E402

PROMPT_IDS = [[72, 101, 108, 108, 111], [1, 2, 3, 4, 5, 6, 7, 8, 9], [50, 60]]
PROMPTS = ["Hello", "checkpoint", "restore the weights"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("model") / "llama-tiny")
    assert write_random_model.main(["--preset", "llama-tiny", "--out", out, "--device", "cuda", "--dtype",
                                    "bfloat16", "--max-shard-bytes", "1000000"]) == 0
    return out


class Holder:
    def __init__(self, model: str, run_dir: str):
        self.run_dir = run_dir
        env = {**os.environ, "PYTHONPATH": ENGINE_ROOT}
        self.log = open(os.path.join(os.path.dirname(run_dir), "holder.log"), "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "engine_host.weight_holder", "--model", model,
                                      "--device", "0", "--run-dir", run_dir], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        ready = os.path.join(run_dir, "ready.json")
        deadline = time.monotonic() + 180
        while not os.path.exists(ready):
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)
        with open(ready) as f:
            self.ready = json.load(f)
        self.socket = self.ready["socket"]

    def text(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture(scope="module")
def holder(model_dir, tmp_path_factory):
    h = Holder(model_dir, str(tmp_path_factory.mktemp("holder") / "run"))
    yield h
    h.stop()


def _stage(tmp_path, model, dtype="bfloat16"):
    from engine_host.backends import torch_stage

    plan = torch_backend.plan(EngineOptions(
        run_dir=str(tmp_path), backend="torch", model=model, device="cuda", dtype=dtype, max_model_len=256,
        engine_args={"weights_from_source": True, "max_num_seqs": 4}))
    return torch_stage.build_stage(plan.stage_specs[0])


def _greedy(stage, steps=8):
    seqs = [SeqInput(i, ids, 0, NewSequence(len(ids) + 64, SamplingParams()))
            for i, ids in enumerate(PROMPT_IDS)]
    out = [[t] for t in stage.step(StepRequest(seqs)).tokens]
    for n in range(steps - 1):
        step = [SeqInput(i, [out[i][-1]], len(ids) + n) for i, ids in enumerate(PROMPT_IDS)]
        for i, t in enumerate(stage.step(StepRequest(step)).tokens):
            out[i].append(t)
    stage.step(StepRequest([], free=list(range(len(PROMPT_IDS)))))
    return out


def _released(stage):
    stage.release()
    assert stage.report()["weight_mappings"] == 0 == cuda_vmm.open_mappings()
    assert all(p.numel() == 0 for p, _ in stage._source._items)


# ---------------------------------------------------------------- the holder


def test_the_holders_ready_json_describes_what_it_holds(holder, model_dir):
    ready = holder.ready
    assert ready["pid"] == holder.proc.pid and ready["device"] == 0 and ready["model"] == model_dir
    assert ready["socket"] == os.path.join(holder.run_dir, weight_share.SOCKET_NAME)
    assert stat.S_IMODE(os.stat(ready["socket"]).st_mode) == 0o600
    assert ready["gpu_uuid"] == torch_weights.device_uuid(torch.device("cuda", 0))
    entries = stf.read_directory(model_dir)
    assert {e["name"] for e in ready["layout"]} == set(entries)
    for e in ready["layout"]:
        assert e["offset"] % 256 == 0 and e["nbytes"] == entries[e["name"]].nbytes
        assert e["file"] == os.path.basename(entries[e["name"]].path)
    assert ready["bytes"] % cuda_vmm.granularity(0) == 0
    assert ready["bytes"] >= max(e["offset"] + e["nbytes"] for e in ready["layout"])
    files = {os.path.basename(p) for p in stf.model_files(model_dir)}
    assert {f["name"] for f in ready["files"]} == files
    for f in ready["files"]:
        st = os.stat(os.path.join(model_dir, f["name"]))
        assert (f["size"], f["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    with open(f"/proc/{holder.proc.pid}/cmdline", "rb") as f:
        cmdline = f.read()
    with open(f"/proc/{holder.proc.pid}/comm") as f:
        comm = f.read().strip()
    assert cmdline.startswith(b"criucheckpoint weight-holder llama-tiny") or comm == "weight-holder"


def test_the_holders_memory_holds_the_files_bytes_and_an_engine_cannot_write_it(holder, model_dir):
    offer, fd = weight_share.receive_offer(holder.socket)
    try:
        mapping = cuda_vmm.import_fd(fd, offer.bytes, 0)
    finally:
        os.close(fd)
    try:
        whole = torch.as_tensor(mapping, device="cuda:0")
        entries = stf.read_directory(model_dir)
        for e in offer.layout:
            with open(entries[e.name].path, "rb") as f:
                f.seek(entries[e.name].offset)
                expected = f.read(e.nbytes)
            assert bytes(whole[e.offset:e.offset + e.nbytes].cpu().numpy()) == expected, e.name
        del whole
    finally:
        mapping.close()
    # A write faults the writer's CUDA context, so it is tried in a process of its own.
    script = textwrap.dedent(f"""
        import os, torch
        from engine_host import cuda_vmm, weight_share
        offer, fd = weight_share.receive_offer({holder.socket!r})
        mapping = cuda_vmm.import_fd(fd, offer.bytes, 0)
        os.close(fd)
        weights = torch.as_tensor(mapping, device="cuda:0")
        print("read", int(weights[:16].sum()), flush=True)
        try:
            weights[:16].fill_(7)
            torch.cuda.synchronize()
        except Exception as exc:
            print("write refused:", type(exc).__name__, flush=True)
            os._exit(0)
        print("write went through", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": ENGINE_ROOT},
                          capture_output=True, text=True, timeout=120)
    assert "write refused" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------- stages


def test_a_stage_maps_its_released_weights_from_the_holder_and_answers_the_same(holder, tmp_path):
    stage = _stage(tmp_path, holder.ready["model"])
    before = _greedy(stage)
    for _ in range(2):  # a second checkpoint of an engine resumed from the holder works the same
        _released(stage)
        phases = stage.reacquire(weight_holder=holder.socket)
        assert list(phases) == ["weights", "kv_pool", "cuda_graph"]
        report = stage.report()
        assert report["weights_from"] == "holder" and report["weight_mappings"] == 1
        mapping = stage._source._mapping
        for param, _ in stage._source._items:
            assert mapping.ptr <= param.data_ptr() < mapping.ptr + mapping.size
        assert _greedy(stage) == before
    _released(stage)
    assert list(stage.reacquire()) == ["weights", "kv_pool", "cuda_graph"]
    assert stage.report()["weights_from"] == "files"
    assert _greedy(stage) == before


def test_a_stage_of_another_dtype_converts_the_holders_tensors(holder, tmp_path):
    stage = _stage(tmp_path, holder.ready["model"], dtype="float32")
    before = _greedy(stage)
    _released(stage)
    stage.reacquire(weight_holder=holder.socket)
    report = stage.report()
    assert report["weights_from"] == "holder" and report["weight_mappings"] == 0  # copies only
    assert all(p.dtype == torch.float32 for p, _ in stage._source._items)
    assert _greedy(stage) == before


def test_an_unreachable_holder_means_reading_the_files(holder, tmp_path, caplog):
    stage = _stage(tmp_path, holder.ready["model"])
    before = _greedy(stage)
    _released(stage)
    stage.reacquire(weight_holder=str(tmp_path / "gone" / weight_share.SOCKET_NAME))
    assert stage.report()["weights_from"] == "files"
    assert "weights not mapped from the weight holder" in caplog.text
    assert _greedy(stage) == before


def test_files_changed_since_the_holder_read_them_mean_reading_the_files(holder, tmp_path, caplog):
    copy = str(tmp_path / "copy")
    shutil.copytree(holder.ready["model"], copy)  # copy2: the same sizes and mtimes
    stage = _stage(tmp_path, copy)
    before = _greedy(stage)
    _released(stage)
    shard = os.path.join(copy, holder.ready["files"][0]["name"])
    os.utime(shard, ns=(time.time_ns(), time.time_ns()))
    stage.reacquire(weight_holder=holder.socket)
    assert stage.report()["weights_from"] == "files"
    assert "is not the file the holder loaded" in caplog.text
    assert _greedy(stage) == before


def test_a_stopped_holder_leaves_engines_that_mapped_it_serving(model_dir, tmp_path):
    h = Holder(model_dir, str(tmp_path / "run"))
    stage = _stage(tmp_path, model_dir)
    before = _greedy(stage)
    _released(stage)
    stage.reacquire(weight_holder=h.socket)
    assert h.stop() == 0
    assert "gave the weights to pid" in open(tmp_path / "holder.log").read()
    assert not os.path.exists(h.socket) and not os.path.exists(os.path.join(h.run_dir, "ready.json"))
    assert _greedy(stage) == before
    _released(stage)


# ---------------------------------------------------------------- engines


def _texts(client):
    return [client.generate(p, max_tokens=12, ignore_eos=True)["text"] for p in PROMPTS]


def _prepare(engine, **args) -> dict:
    reply = engine.client().call("prepare_checkpoint", args, timeout=120)
    if reply["kind"] == "final":
        wait_for(lambda: not os.path.exists(engine.path("ready.json")), what="prepared")
    return reply


def _resume(engine, **fields) -> dict:
    engine.write_resume(port=0, **fields)
    wait_for(lambda: os.path.exists(engine.path("ready.json")), timeout=300, what="ready.json after resume")
    return engine.wait_ready()


def test_an_engine_resumed_with_a_holder_maps_its_weights_and_serves_the_same(start_engine, holder):
    engine = start_engine("--backend", "torch", "--model", holder.ready["model"], "--max-model-len", "256",
                          "--engine-args", '{"weights_from_source": true, "max_num_seqs": 4}', wait=False)
    engine.wait_ready(timeout=300)
    before = _texts(engine.client())
    assert _prepare(engine)["state"] == "prepared"
    ready = _resume(engine, weight_holder=holder.socket)
    assert ready["weights_from"] == "holder"
    assert list(ready["phases"])[:3] == ["resume_reacquire", "resume_weights", "resume_kv_pool"]
    assert _texts(engine.client()) == before
    refused = _prepare(engine, keep_caches=True)
    assert refused["kind"] == "error" and refused["code"] == "checkpoint_unsupported", refused
    assert _texts(engine.client()) == before
    assert _prepare(engine)["state"] == "prepared"
    ready = _resume(engine)
    assert ready["weights_from"] == "files"
    assert _texts(engine.client()) == before
