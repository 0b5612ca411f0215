"""As vllm/config: the parts of VllmConfig the adapter reads, and VllmConfig.compute_hash().

Model resolution follows vLLM offline: a local directory with config.json, or (for the double only) a
name in BUILTIN_MODELS; any other name fails as transformers does without network.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from vllm.platforms import current_platform
from vllm.tokenizers import EOS, VOCAB_SIZE

BUILTIN_MODELS = {
    "double/byte-lm": {"vocab_size": VOCAB_SIZE, "eos_token_id": EOS, "max_position_embeddings": 4096,
                       "torch_dtype": "bfloat16", "model_type": "llama"},
}
_DTYPES = {"auto": None, "half": "float16", "float16": "float16", "bfloat16": "bfloat16",
           "float": "float32", "float32": "float32"}


def _hash(factors: Any) -> str:
    return hashlib.sha256(str(factors).encode()).hexdigest()[:10]


def _hf_config(model: str) -> dict:
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        config_path = os.path.join(path, "config.json")
        if not os.path.isfile(config_path):
            raise OSError(f"{path} does not appear to have a file named config.json.")
        with open(config_path, encoding="utf-8") as f:
            return json.load(f)
    if model in BUILTIN_MODELS:
        return dict(BUILTIN_MODELS[model])
    raise OSError(f"{model} is not a local folder and is not a valid model identifier listed on "
                  "'https://huggingface.co/models'")


@dataclass
class ModelConfig:
    model: str
    tokenizer: str
    dtype: str
    seed: int
    max_model_len: int
    enforce_eager: bool
    enable_sleep_mode: bool
    skip_tokenizer_init: bool
    max_logprobs: int
    hf_config: dict = field(default_factory=dict)

    @classmethod
    def build(cls, model: str, tokenizer: str | None, dtype: str, seed: int, max_model_len: int | None,
              enforce_eager: bool, enable_sleep_mode: bool, skip_tokenizer_init: bool,
              max_logprobs: int) -> "ModelConfig":
        if enable_sleep_mode and not current_platform.is_sleep_mode_available():
            raise ValueError("Sleep mode is not supported on current platform.")
        hf = _hf_config(model)
        if dtype not in _DTYPES:
            raise ValueError(f"Unknown dtype: {dtype!r}")
        resolved = _DTYPES[dtype] or hf.get("torch_dtype", "bfloat16")
        derived = hf.get("max_position_embeddings", 2048)
        if max_model_len is None:
            max_model_len = derived
        elif max_model_len > derived:
            raise ValueError(f"User-specified max_model_len ({max_model_len}) is greater than the derived "
                             f"max_model_len (max_position_embeddings={derived} in model's config.json).")
        return cls(model, tokenizer or model, resolved, seed, max_model_len, enforce_eager,
                   enable_sleep_mode, skip_tokenizer_init, max_logprobs, hf)

    def get_vocab_size(self) -> int:
        return self.hf_config["vocab_size"]

    def compute_hash(self) -> str:
        return _hash([self.model, self.dtype, self.max_model_len, self.enforce_eager,
                      self.hf_config.get("model_type")])


@dataclass
class CacheConfig:
    block_size: int
    gpu_memory_utilization: float
    enable_prefix_caching: bool
    num_gpu_blocks: int | None = None

    def compute_hash(self) -> str:
        return _hash([self.block_size])


@dataclass
class ParallelConfig:
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def compute_hash(self) -> str:
        return _hash([self.tensor_parallel_size, self.pipeline_parallel_size, self.data_parallel_size])


@dataclass
class SchedulerConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    stream_interval: int = 1

    def compute_hash(self) -> str:
        return _hash([self.max_num_batched_tokens])


@dataclass
class DeviceConfig:
    device_type: str

    def compute_hash(self) -> str:
        return _hash([self.device_type])


@dataclass
class VllmConfig:
    model_config: ModelConfig
    cache_config: CacheConfig
    parallel_config: ParallelConfig
    scheduler_config: SchedulerConfig
    device_config: DeviceConfig

    def compute_hash(self) -> str:
        """Identifies what shapes the computation graph (vLLM's torch.compile cache key), not every
        engine setting: gpu_memory_utilization, for one, is not part of it."""
        from vllm import __version__

        factors = [[__version__, self.model_config.compute_hash(), self.cache_config.compute_hash(),
                    self.parallel_config.compute_hash(), self.scheduler_config.compute_hash(),
                    self.device_config.compute_hash()]]
        return _hash(factors)
