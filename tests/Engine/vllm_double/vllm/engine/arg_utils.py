"""As vllm/engine/arg_utils.py: EngineArgs / AsyncEngineArgs dataclasses (a subset of vLLM's fields,
the same names and defaults) and create_engine_config()."""
from dataclasses import dataclass
from typing import Any

from vllm.config import (CacheConfig, DeviceConfig, ModelConfig, ParallelConfig, SchedulerConfig,
                         VllmConfig)
from vllm.platforms import current_platform
from vllm.usage.usage_lib import UsageContext


@dataclass
class EngineArgs:
    """Arguments for vLLM engine."""
    model: str = "Qwen/Qwen3-0.6B"
    served_model_name: str | list | None = None
    tokenizer: str | None = None
    skip_tokenizer_init: bool = False
    tokenizer_mode: str = "auto"
    trust_remote_code: bool = False
    download_dir: str | None = None
    load_format: str = "auto"
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    seed: int = 0
    max_model_len: int | None = None
    distributed_executor_backend: Any = None
    pipeline_parallel_size: int = 1
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    block_size: int | None = None
    enable_prefix_caching: bool | None = None
    cpu_offload_gb: float = 0
    gpu_memory_utilization: float = 0.9
    kv_cache_memory_bytes: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    max_logprobs: int = 20
    disable_log_stats: bool = False
    revision: str | None = None
    tokenizer_revision: str | None = None
    quantization: str | None = None
    enforce_eager: bool = False
    enable_chunked_prefill: bool | None = None
    compilation_config: Any = None
    generation_config: str = "auto"
    enable_sleep_mode: bool = False
    async_scheduling: bool | None = None
    stream_interval: int = 1

    def __post_init__(self):
        if not self.tokenizer:
            self.tokenizer = self.model

    def create_engine_config(self, usage_context: UsageContext | None = None,
                             headless: bool = False) -> VllmConfig:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("GPU memory utilization must be within (0, 1]. Got "
                             f"{self.gpu_memory_utilization}.")
        model_config = ModelConfig.build(self.model, self.tokenizer, self.dtype, self.seed,
                                         self.max_model_len, self.enforce_eager,
                                         self.enable_sleep_mode, self.skip_tokenizer_init,
                                         self.max_logprobs)
        max_num_seqs = self.max_num_seqs or 256
        prefix_caching = True if self.enable_prefix_caching is None else self.enable_prefix_caching
        return VllmConfig(
            model_config=model_config,
            cache_config=CacheConfig(self.block_size or 16, self.gpu_memory_utilization,
                                     prefix_caching),
            parallel_config=ParallelConfig(self.tensor_parallel_size, self.pipeline_parallel_size,
                                           self.data_parallel_size),
            scheduler_config=SchedulerConfig(max_num_seqs, self.max_num_batched_tokens or 8192,
                                             self.stream_interval),
            device_config=DeviceConfig(current_platform.device_type))


@dataclass
class AsyncEngineArgs(EngineArgs):
    """Arguments for asynchronous vLLM engine."""
    enable_log_requests: bool = False
