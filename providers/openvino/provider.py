"""OpenVINO provider. This version detects OpenVINO and validates options (ORT's OpenVINO EP
names); subgraph compilation is not written yet, so it never reports itself available and
sessions fall back with one warning."""

from __future__ import annotations

from providers.base import ExecutionProvider, OptionSpec


class OpenVINOProvider(ExecutionProvider):
    name = "openvino"
    ort_name = "OpenVINOExecutionProvider"
    device = "cpu"
    option_specs = {
        "device_type": OptionSpec(str, "CPU", doc="CPU, GPU, NPU, AUTO, HETERO:..."),
        "precision": OptionSpec(str, "FP32", choices=("FP32", "FP16", "BF16", "ACCURACY")),
        "num_streams": OptionSpec(int, 1),
        "num_of_threads": OptionSpec(int, 0),
        "cache_dir": OptionSpec(str, ""),
        "enable_dynamic_shapes": OptionSpec(bool, False),
    }

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import openvino  # noqa: F401
        except Exception as exc:
            return False, f"OpenVINO is not importable ({type(exc).__name__}); install ferry[openvino]"
        return False, "the OpenVINO provider's subgraph compiler is not part of this ferry version yet"
