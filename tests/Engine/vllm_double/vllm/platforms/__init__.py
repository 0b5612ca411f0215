"""vllm.platforms.current_platform: which device vLLM was built for; sleep mode needs CUDA or ROCm."""
import os


class _Platform:
    def __init__(self, kind: str):
        self.device_type = kind
        self.device_name = kind
        self.dispatch_key = kind.upper()

    def is_cuda_alike(self) -> bool:
        return self.device_type == "cuda"

    def is_cpu(self) -> bool:
        return self.device_type == "cpu"

    def is_sleep_mode_available(self) -> bool:
        return self.device_type == "cuda"

    def get_device_name(self, device_id: int = 0) -> str:
        return "Double GPU" if self.device_type == "cuda" else "cpu"


current_platform = _Platform(os.environ.get("VLLM_DOUBLE_PLATFORM", "cuda"))
