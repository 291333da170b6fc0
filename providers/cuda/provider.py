"""The CUDA execution provider: CuPy kernels on one GPU.

- Kernels (providers/cuda/kernels/) are written against the array module; on a GPU that is
  CuPy (matrix products through cuBLAS; convolutions through cuDNN when CuPy exposes it, i.e.
  ``cupyx.cudnn`` on CuPy <= 13 -- CuPy 14 dropped it -- else im2col + GEMM). With ``FERRY_CUDA_EMULATION=1`` the same kernels run on numpy, for tests on
  machines without a GPU; nothing ever switches to emulation silently.
- Tensors cross between host and device only at partition boundaries (the executor calls
  :meth:`CUDAProvider.to_device` / :meth:`CUDAProvider.to_host`); every crossing is counted in
  :attr:`CUDAProvider.stats`, shown by ``session.explain()`` under each cuda partition's
  ``details["copies"]``.
- Options follow ORT's CUDA EP: device_id, gpu_mem_limit (the CuPy memory pool's limit),
  arena_extend_strategy (accepted; CuPy's pool has its own growth policy), cudnn_conv_algo_search
  (HEURISTIC: first workable algorithm in preference order; EXHAUSTIVE: every candidate timed
  once per input shape, the fastest cached), enable_cuda_graph (static-shape partitions replayed
  as captured CUDA graphs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from providers.base import Capability, CompileContext, ExecutionProvider, OptionSpec
from providers.cuda import backend as _backend
from providers.cuda.kernels import lookup, versions_of
from providers.cuda.kernels.elementwise import DEVICE_KINDS
from providers.cuda.partition import CudaPartition, TransferStats
from runtime import ir

log = logging.getLogger("ferry")


def _probe_cuda() -> tuple[bool, str]:
    """Kept for the TensorRT provider and older callers."""
    return _backend.probe_cuda()


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


class CUDAProvider(ExecutionProvider):
    name = "cuda"
    ort_name = "CUDAExecutionProvider"
    device = "cuda:0"
    option_specs = {
        "device_id": OptionSpec(int, 0, doc="CUDA device ordinal", validate=_non_negative),
        "gpu_mem_limit": OptionSpec(int, 0, doc="bytes the CuPy memory pool may hold (0: no "
                                                "limit)", validate=_non_negative),
        "arena_extend_strategy": OptionSpec(
            str, "kNextPowerOfTwo", choices=("kNextPowerOfTwo", "kSameAsRequested"),
            doc="accepted for ORT compatibility; CuPy's memory pool decides its own growth"),
        "cudnn_conv_algo_search": OptionSpec(
            str, "HEURISTIC", choices=("HEURISTIC", "EXHAUSTIVE", "DEFAULT"),
            doc="HEURISTIC: first workable algorithm; EXHAUSTIVE: time each candidate once "
                "per input shape and cache the fastest"),
        "enable_cuda_graph": OptionSpec(bool, False, doc="capture static-shape runs as CUDA "
                                                         "graphs and replay them"),
        "do_copy_in_default_stream": OptionSpec(
            bool, True, doc="accepted for ORT compatibility; copies use the current stream"),
        "cudnn_conv_use_max_workspace": OptionSpec(
            bool, True, doc="accepted for ORT compatibility"),
    }

    def __init__(self, options: dict[str, Any] | None = None, session_options: Any = None):
        super().__init__(options, session_options)
        dev_id = int(self.options["device_id"])
        self.backend = _backend.get_backend(dev_id)
        self.device = self.backend.device
        self.stats = TransferStats()
        if self.backend.emulated:
            log.warning("the CUDA provider runs in host emulation (%s=1): numpy, no GPU",
                        _backend.EMULATION_ENV)
        self.backend.set_memory_limit(int(self.options.get("gpu_mem_limit", 0) or 0))

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if _backend.emulation_requested():
            return True, ""
        return _backend.probe_cuda()

    # ---- capability ------------------------------------------------------------------------
    def capability(self, graph: ir.Graph, nodes: Iterable[ir.Node]) -> Capability:
        cap = Capability()
        for node in nodes:
            why = unsupported_reason(graph, node)
            if why is None:
                cap.claimed.add(node)
            else:
                cap.reasons[node] = why
        return cap

    def compile(self, subgraph: ir.Graph, context: CompileContext) -> CudaPartition:
        return CudaPartition(subgraph, self, context)

    # ---- transfers -----------------------------------------------------------------------
    def is_on_device(self, value: Any) -> bool:
        return self.backend.is_device_array(value)

    def to_device(self, value: Any) -> Any:
        from runtime.tensor import Tensor

        if isinstance(value, Tensor):
            value = value._value
        b = self.backend
        if b.is_device_array(value):
            return value
        if _backend.is_device_value(value):
            # Another library's CUDA array (or our Tensor on another device): no host trip.
            return b.wrap(b.from_foreign(value))
        if isinstance(value, list) or value is None:
            return value  # sequences / empty optionals never reach a cuda partition
        host = np.asarray(value)
        self.stats.add(h2d=1, h2d_bytes=host.nbytes)
        return b.wrap(b.upload(host))

    def to_host(self, value: Any) -> Any:
        b = self.backend
        if isinstance(value, np.ndarray) and not b.is_device_array(value) and \
                not isinstance(value, _backend.EmulatedDeviceArray):
            return value  # a host value produced by a cuda partition (Shape...)
        if not hasattr(value, "shape"):
            return value
        host = b.download(b.unwrap(value)) if b.is_device_array(value) else \
            _backend.to_numpy(value)
        self.stats.add(d2h=1, d2h_bytes=host.nbytes)
        return host

    def transfer_stats(self) -> dict[str, int]:
        return self.stats.snapshot()

    def synchronize(self) -> None:
        self.backend.synchronize()

    def close(self) -> None:
        self.stats.reset()


def unsupported_reason(graph: ir.Graph, node: ir.Node) -> str | None:
    """None when the CUDA provider runs ``node``; else the reason it does not."""
    version = graph.opset(node.domain)
    k = lookup(node.op_type, node.domain, version)
    dom = node.domain or "ai.onnx"
    if k is None:
        known = versions_of(node.op_type) if node.domain in ("", "ai.onnx") else []
        if known:
            return (f"no CUDA kernel of {dom}::{node.op_type} for opset {version} "
                    f"(kernels since: {known})")
        return f"no CUDA kernel of {dom}::{node.op_type}"
    if any(True for _ in node.subgraphs()):
        return "nodes with subgraphs run on the CPU"
    for name in list(node.inputs) + list(node.outputs):
        if not name:
            continue
        vi = graph.lookup_info(name)
        if vi is None and name in graph.initializers:
            dt = graph.initializers[name].dtype
        elif vi is not None and vi.kind != "tensor":
            return f"value '{name}' is a {vi.type_string}; CUDA kernels take tensors only"
        elif vi is not None and vi.elem_type:
            try:
                dt = vi.dtype
            except Exception:
                return f"value '{name}' has an element type CuPy cannot hold"
        else:
            continue
        if dt.kind not in DEVICE_KINDS or dt.name in ("bfloat16",) or \
                dt.name.startswith(("float8", "int4", "uint4", "float4")):
            return f"value '{name}' is tensor({dt}); CuPy has no such arrays"
    if k.check is not None:
        why = k.check(node, graph)
        if why:
            return why
    return None
