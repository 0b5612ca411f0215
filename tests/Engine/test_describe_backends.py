"""`python -m engine_host --describe-backends`: the one description of the backends that the PowerShell module
asks for (validation, auto, default models, tab completion)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ENGINE_ROOT, VLLM_DOUBLE
from engine_host import backends
from engine_host.backends import tiny, torch_backend

TORCH_HERE = all(importlib.util.find_spec(name) is not None for name in torch_backend.DEPENDENCIES)
VLLM_HERE = importlib.util.find_spec("vllm") is not None


def _describe(pythonpath: str = ENGINE_ROOT) -> dict:
    result = subprocess.run([sys.executable, "-m", "engine_host", "--describe-backends"], cwd="/",
                            env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _by_name(description: dict) -> dict:
    return {backend["name"]: backend for backend in description["backends"]}


def test_needs_no_run_directory_and_prints_one_json_object():
    description = _describe()
    assert set(description) == {"backends", "auto", "order", "versions"}


def test_lists_every_backend_in_the_order_auto_prefers_them():
    description = _describe()
    assert description["order"] == ["vllm", "torch", "tiny"]
    assert [backend["name"] for backend in description["backends"]] == description["order"]


def test_default_models_are_those_the_module_documents():
    backends_by_name = _by_name(_describe())
    assert {name: b["default_model"] for name, b in backends_by_name.items()} == {
        "tiny": "tiny-256m", "torch": "llama-1b", "vllm": None}


def test_presets_come_from_each_backends_own_table():
    backends_by_name = _by_name(_describe())
    assert [p["name"] for p in backends_by_name["tiny"]["presets"]] == list(tiny.PRESETS)
    assert [p["name"] for p in backends_by_name["torch"]["presets"]] == list(torch_backend.PRESETS)
    assert backends_by_name["vllm"]["presets"] == []


def test_each_preset_has_a_description_and_its_parameter_count():
    presets = {p["name"]: p for b in _describe()["backends"] for p in b["presets"]}
    assert all(p["description"] and p["parameters"] > 0 for p in presets.values())
    # The names say how big they are: TinyLlama-1.1B and Llama-3-8B; tiny-256m's float32 weights take 256 MB.
    assert round(presets["llama-1b"]["parameters"] / 1e9, 1) == 1.1
    assert round(presets["llama-8b"]["parameters"] / 1e9) == 8
    assert round(presets["tiny-256m"]["parameters"] * 4 / 1e6, -1) == 260


def test_tiny_is_available_where_the_engine_host_runs():
    tiny_backend = _by_name(_describe())["tiny"]
    assert tiny_backend["available"] is True and "reason" not in tiny_backend


@pytest.mark.skipif(VLLM_HERE, reason="vLLM is installed for this Python")
def test_a_backend_whose_packages_are_missing_is_unavailable_with_the_reason():
    vllm = _by_name(_describe())["vllm"]
    assert vllm["available"] is False and vllm["reason"] == "this Python cannot import vllm"


@pytest.mark.skipif(VLLM_HERE or TORCH_HERE, reason="vLLM or torch is installed for this Python")
def test_auto_is_tiny_without_vllm_and_torch():
    assert _describe()["auto"] == "tiny"


def test_auto_is_vllm_where_vllm_can_be_imported():
    description = _describe(os.pathsep.join([ENGINE_ROOT, VLLM_DOUBLE]))
    assert description["auto"] == "vllm" and _by_name(description)["vllm"]["available"] is True


def test_auto_is_what_the_engine_resolves_auto_to():
    assert _describe()["auto"] == backends.resolve(backends.AUTO)


def _check_dependencies(*python_options: str) -> dict:
    command = [sys.executable, *python_options, "-m", "engine_host", "--check-dependencies"]
    result = subprocess.run(command, cwd="/", env={**os.environ, "PYTHONPATH": ENGINE_ROOT},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_checking_dependencies_finds_every_package_and_curve_where_the_engine_runs():
    assert _check_dependencies() == {"missing": [], "curve": True}


def test_checking_dependencies_names_each_package_a_python_cannot_import():
    # -S: without site-packages, where Debian's python3-zmq, python3-msgpack and python3-numpy are.
    assert _check_dependencies("-S") == {"missing": ["zmq", "msgpack", "numpy"], "curve": False}


def test_describing_imports_no_backend_package():
    probe = ("import sys; from engine_host import backends; backends.describe(); "
             "print([m for m in ('torch', 'transformers', 'vllm', 'numpy', 'zmq') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ENGINE_ROOT, capture_output=True, text=True,
                            check=True, timeout=30)
    assert result.stdout.strip() == "[]"
