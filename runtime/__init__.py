"""ferry: an ONNX inference runtime with onnxruntime's API.

    from runtime import InferenceSession
    sess = InferenceSession("model.onnx", providers=["cpu"])
    outputs = sess.run(None, {"input": x})
"""

from __future__ import annotations

import logging

from runtime import errors
from runtime.options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions
from runtime.session import InferenceSession, ModelMetadata, NodeArg, ProviderFallbackWarning
from runtime.tensor import OrtValue, Tensor
from runtime.iobinding import IOBinding

__version__ = "0.1.0"

# A library logs, it does not print: applications attach handlers to the "ferry" logger.
logging.getLogger("ferry").addHandler(logging.NullHandler())


def get_all_providers() -> list[str]:
    """Every provider ferry knows (ORT names), available here or not."""
    from providers import registry

    return [registry.ort_name(n) for n in registry.all_provider_names()]


def get_available_providers() -> list[str]:
    """Providers usable on this machine (ORT names), in priority order."""
    from providers import registry

    return [registry.ort_name(n) for n in registry.available_providers()]


def get_unavailable_providers() -> dict[str, str]:
    """Providers that cannot be used here, with the reason for each (ferry's addition)."""
    from providers import registry

    out = {}
    for n in registry.all_provider_names():
        ok, reason = registry.availability(n)
        if not ok:
            out[registry.ort_name(n)] = reason
    return out


def get_device() -> str:
    return "CPU"


__all__ = [
    "InferenceSession", "SessionOptions", "RunOptions", "GraphOptimizationLevel",
    "ExecutionMode", "NodeArg", "ModelMetadata", "ProviderFallbackWarning", "errors",
    "get_all_providers", "get_available_providers", "get_unavailable_providers", "get_device",
    "Tensor", "OrtValue", "IOBinding",
]
