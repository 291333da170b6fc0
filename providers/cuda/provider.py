"""CUDA provider (CuPy). This version detects CUDA and validates options; its kernels are not
written yet, so it never reports itself available and sessions that ask for it fall back with
one warning naming the reason."""

from __future__ import annotations

from providers.base import ExecutionProvider, OptionSpec


def _probe_cuda() -> tuple[bool, str]:
    try:
        import cupy  # noqa: F401
    except Exception as exc:  # ImportError, or a CUDA driver error raised at import
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc}); install ferry[cuda]"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no usable CUDA device ({exc})"
    if count < 1:
        return False, "no CUDA device found"
    return True, ""


class CUDAProvider(ExecutionProvider):
    name = "cuda"
    ort_name = "CUDAExecutionProvider"
    device = "cuda:0"
    option_specs = {
        "device_id": OptionSpec(int, 0, doc="CUDA device ordinal"),
        "gpu_mem_limit": OptionSpec(int, 0, doc="bytes the memory pool may hold (0: no limit)"),
        "cudnn_conv_algo_search": OptionSpec(str, "HEURISTIC",
                                             choices=("HEURISTIC", "EXHAUSTIVE", "DEFAULT")),
        "enable_cuda_graph": OptionSpec(bool, False, doc="capture static-shape runs"),
    }

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        ok, reason = _probe_cuda()
        if not ok:
            return False, reason
        return False, "the CUDA provider's kernels are not part of this ferry version yet"
