"""The torch backend. Skipped where torch is not installed (CI); CUDA tests skip without a GPU.

Stage tests build the core-side stage in this process and check our forward pass against
transformers' own; engine tests run a real engine subprocess.
"""
from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine_host.backends import torch_backend  # noqa: E402
from engine_host.options import EngineOptions  # noqa: E402
from engine_host.sampling import SamplingParams  # noqa: E402
from engine_host.stage import NewSequence, SeqInput, StepRequest  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
PROMPT_IDS = [[72, 101, 108, 108, 111], [1, 2, 3, 4, 5, 6, 7, 8, 9], [50, 60]]


def _stage(tmp_path, device="cpu", dtype="auto", **engine_args):
    from engine_host.backends import torch_stage

    plan = torch_backend.plan(EngineOptions(
        run_dir=str(tmp_path), backend="torch", model="llama-tiny", device=device, dtype=dtype,
        max_model_len=256, engine_args=engine_args))
    return torch_stage.build_stage(plan.stage_specs[0])


def _new(ids, temperature=0.0, seed=None):
    return NewSequence(len(ids) + 64, SamplingParams(temperature, 1.0, seed))


def _greedy(stage, prompts, steps, first_id=0):
    """Decode all prompts together; returns each one's tokens."""
    seqs = [SeqInput(first_id + i, ids, 0, _new(ids)) for i, ids in enumerate(prompts)]
    out = [[t] for t in stage.step(StepRequest(seqs)).tokens]
    for n in range(steps - 1):
        step = [SeqInput(first_id + i, [out[i][-1]], len(ids) + n) for i, ids in enumerate(prompts)]
        for i, t in enumerate(stage.step(StepRequest(step)).tokens):
            out[i].append(t)
    stage.step(StepRequest([], free=[first_id + i for i in range(len(prompts))]))
    return out


def _reference_greedy(stage, ids, steps):
    """transformers' own forward over the whole sequence at every step (no cache)."""
    model, tokens = stage._model, list(ids)
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(torch.tensor([tokens], device=stage.device)).logits[0, -1]
            tokens.append(int(logits.float().argmax()))
    return tokens[len(ids):]


def test_stage_matches_transformers_forward_on_cpu(tmp_path):
    stage = _stage(tmp_path)
    assert stage.report()["device"] == "cpu" and stage.report()["dtype"] == "float32"
    for ids in PROMPT_IDS:
        assert _greedy(stage, [ids], 12) == [_reference_greedy(stage, ids, 12)]


def test_batched_decode_equals_decoding_alone_on_cpu(tmp_path):
    stage = _stage(tmp_path)
    alone = [_greedy(stage, [ids], 10, first_id=10 * k)[0] for k, ids in enumerate(PROMPT_IDS)]
    assert _greedy(stage, PROMPT_IDS, 10, first_id=100) == alone


def test_release_and_reacquire_keep_the_model(tmp_path):
    stage = _stage(tmp_path)
    before = _greedy(stage, PROMPT_IDS, 8)
    stage.release()
    assert stage.report()["kv_pool_bytes"] == 0
    assert set(stage.reacquire()) == {"kv_pool"}
    assert stage.report()["kv_pool_bytes"] > 0
    assert _greedy(stage, PROMPT_IDS, 8) == before


@needs_cuda
def test_cuda_graph_decode_matches_transformers_forward(tmp_path):
    stage = _stage(tmp_path, device="cuda", dtype="float32")
    assert stage._graphs, "decode should be captured as CUDA graphs"
    for ids in PROMPT_IDS:
        assert _greedy(stage, [ids], 12) == [_reference_greedy(stage, ids, 12)]


@needs_cuda
def test_cuda_graph_replay_equals_eager(tmp_path):
    graphs = _stage(tmp_path, device="cuda")
    eager = _stage(tmp_path, device="cuda", enforce_eager=True)
    assert graphs.report()["dtype"] == "bfloat16" and not eager._graphs
    for k, ids in enumerate(PROMPT_IDS):  # batch of 1: the same kernels either way
        assert _greedy(graphs, [ids], 16, 10 * k) == _greedy(eager, [ids], 16, 10 * k)


@needs_cuda
def test_cuda_release_frees_the_pool_and_graphs(tmp_path):
    stage = _stage(tmp_path, device="cuda", max_num_seqs=64)
    before = _greedy(stage, PROMPT_IDS, 8)
    held = torch.cuda.memory_reserved()
    pool = stage.report()["kv_pool_bytes"]
    stage.release()
    assert torch.cuda.memory_reserved() <= held - pool
    phases = stage.reacquire()
    assert set(phases) == {"kv_pool", "cuda_graph"}
    assert _greedy(stage, PROMPT_IDS, 8) == before


# ---------------------------------------------------------------- engine subprocess


def _save_llama_tiny(path, with_tokenizer: bool):
    """The llama-tiny preset's exact weights (same seed, same init order) as a model directory."""
    config = transformers.LlamaConfig(**torch_backend.PRESETS["llama-tiny"])
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(path)
    if with_tokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(["hello world, the engine checkpoints and restores"] * 50,
                                trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>",
                                             eos_token="</s>").save_pretrained(path)


def _texts(client, prompts, **args):
    return [client.generate(p, max_tokens=12, ignore_eos=True, **args)["text"] for p in prompts]


def test_engine_on_cpu_with_preset_and_directory(start_engine, tmp_path):
    common = ("--backend", "torch", "--device", "cpu", "--max-model-len", "256")
    preset = start_engine(*common, "--model", "llama-tiny")
    hello = preset.client().call("hello")
    assert (hello["backend"], hello["device"], hello["dtype"]) == ("torch", "cpu", "float32")
    assert hello["tokenizer"] == "byte" and hello["vocab_size"] == 1024
    assert hello["host_memory_bytes"] > 0 and hello["max_num_seqs"] == 8
    assert list(preset.ready["phases"]) == ["import", "plan", "spawn_cores", "import_backend",
                                            "weights", "kv_pool", "warmup", "bind"]
    prompts = ["Hello", "checkpoint"]
    expected = _texts(preset.client(), prompts)

    model_dir = tmp_path / "llama-tiny-dir"
    _save_llama_tiny(model_dir, with_tokenizer=False)
    from_dir = start_engine(*common, "--model", str(model_dir))
    assert _texts(from_dir.client(), prompts) == expected


def test_engine_with_a_transformers_tokenizer_streams_whole_text(start_engine, tmp_path):
    model_dir = tmp_path / "with-tokenizer"
    _save_llama_tiny(model_dir, with_tokenizer=True)
    engine = start_engine("--backend", "torch", "--device", "cpu", "--model", str(model_dir))
    c = engine.client()
    assert c.call("hello")["tokenizer"].startswith("hf:")
    replies = c.replies(c.send("generate", {"prompt": "hello world", "max_tokens": 20,
                                            "stream": True, "ignore_eos": True}))
    final = replies[-1]
    assert final["prompt_tokens"] < len("hello world") and final["completion_tokens"] == 20
    assert "".join(r["text"] for r in replies[:-1]) == final["text"]


def _prepare_resume(engine):
    c = engine.client()
    assert c.call("prepare_checkpoint")["state"] == "prepared"
    while os.path.exists(engine.path("ready.json")):
        time.sleep(0.02)
    engine.write_resume(port=0)
    while not os.path.exists(engine.path("ready.json")):
        time.sleep(0.02)
    return engine.wait_ready()


def test_engine_prepare_resume_on_cpu(start_engine):
    engine = start_engine("--backend", "torch", "--device", "cpu", "--model", "llama-tiny")
    before = _texts(engine.client(), ["abc", "xyz"])
    ready = _prepare_resume(engine)
    assert list(ready["phases"]) == ["resume_reacquire", "resume_kv_pool", "resume_canary", "resume_bind"]
    assert _texts(engine.client(), ["abc", "xyz"]) == before


@needs_cuda
def test_engine_on_cuda_prepare_resume(start_engine):
    engine = start_engine("--backend", "torch", "--model", "llama-tiny", "--engine-args",
                          '{"max_num_seqs": 32}')
    c = engine.client()
    hello = c.call("hello")
    assert hello["device"].startswith("cuda") and hello["dtype"] == "bfloat16"
    assert hello["gpu_memory_bytes"] > 0 and hello["max_num_seqs"] == 32
    assert "cuda_graph" in engine.ready["phases"]
    prompts = ["Hello", "GPU", "checkpoint", "restore"]
    before = _texts(c, prompts)
    ids = [c.send("generate", {"prompt": p, "max_tokens": 12, "ignore_eos": True}) for p in prompts]
    assert all(c.replies(i)[-1]["kind"] == "final" for i in ids)
    ready = _prepare_resume(engine)
    assert "resume_cuda_graph" in ready["phases"]
    c2 = engine.client()
    assert _texts(c2, prompts) == before
    assert c2.call("hello")["gpu_memory_bytes"] > 0
