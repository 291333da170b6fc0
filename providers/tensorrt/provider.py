"""TensorRT provider. This version detects TensorRT and validates options; engines are not
built yet, so it never reports itself available and sessions fall back with one warning."""

from __future__ import annotations

from providers.base import ExecutionProvider, OptionSpec
from providers.cuda.provider import _probe_cuda


class TensorRTProvider(ExecutionProvider):
    name = "tensorrt"
    ort_name = "TensorrtExecutionProvider"
    device = "cuda:0"
    option_specs = {
        "device_id": OptionSpec(int, 0),
        "trt_fp16_enable": OptionSpec(bool, False),
        "trt_int8_enable": OptionSpec(bool, False),
        "trt_max_workspace_size": OptionSpec(int, 1 << 30),
        "trt_engine_cache_enable": OptionSpec(bool, False),
        "trt_engine_cache_path": OptionSpec(str, ""),
        "trt_timing_cache_enable": OptionSpec(bool, False),
    }

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except Exception as exc:
            return False, f"TensorRT is not importable ({type(exc).__name__}); install ferry[tensorrt]"
        ok, reason = _probe_cuda()
        if not ok:
            return False, reason
        return False, "the TensorRT provider's engine builder is not part of this ferry version yet"
