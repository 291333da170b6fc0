"""The CUDA provider's kernels: one registry entry per (op, since-version).

A kernel is ``fn(ctx, *inputs, **attrs)``: ``ctx`` is a :class:`KernelContext` (``ctx.xp`` is
the array module: CuPy on a GPU, numpy in host emulation or when a small shape computation runs
on the host), inputs positionally (None for an absent optional input), attributes keyword-only
with their ONNX defaults in the signature. Inputs listed in ``shape_inputs`` arrive as host
numpy arrays (their values decide output shapes); the others as ``xp`` arrays.

``host_ok``: the op may run on the host with numpy when all its inputs are small host values
(shape arithmetic: Shape -> Gather -> Concat -> Reshape never touches the GPU).
``host_output``: the op's result is a host value by nature (Shape, Size).
``check(node, graph) -> str | None``: attribute combinations the kernel does not implement
(the capability step then leaves the node to the next provider, with that reason).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class KernelContext:
    xp: Any
    on_device: bool
    opset: int
    num_outputs: int
    node_name: str = ""
    # The partition's per-shape caches (conv algorithm choice ...), shared by its runs.
    cache: dict = field(default_factory=dict)
    backend: Any = None
    options: dict = field(default_factory=dict)


@dataclass
class CudaKernel:
    op_type: str
    since: int
    fn: Callable
    shape_inputs: tuple[int, ...]
    host_ok: bool
    host_output: bool
    check: Callable | None
    defaults: dict[str, Any]

    def call(self, ctx: KernelContext, inputs: list, attrs: dict) -> list:
        kwargs = {k: v for k, v in attrs.items() if k in self.defaults}
        out = self.fn(ctx, *inputs, **kwargs)
        if isinstance(out, (tuple, list)):
            return list(out)
        return [out]


_REGISTRY: dict[str, list[CudaKernel]] = {}


def register(op_type: str, since: int = 1, *, shape_inputs: tuple[int, ...] = (),
             host_ok: bool = False, host_output: bool = False,
             check: Callable | None = None):
    def decorate(fn):
        defaults = {p.name: (None if p.default is inspect.Parameter.empty else p.default)
                    for p in inspect.signature(fn).parameters.values()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
        k = CudaKernel(op_type, since, fn, tuple(shape_inputs), host_ok, host_output, check,
                       defaults)
        versions = _REGISTRY.setdefault(op_type, [])
        if any(v.since == since for v in versions):
            raise RuntimeError(f"CUDA kernel {op_type} since {since} registered twice")
        versions.append(k)
        versions.sort(key=lambda v: v.since)
        return fn

    return decorate


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    from providers.cuda.kernels import elementwise, nn, reduce, resize, tensor_ops  # noqa: F401
    _loaded = True


def lookup(op_type: str, domain: str, opset: int) -> CudaKernel | None:
    """Newest kernel of ``op_type`` (default ONNX domain only) with since <= ``opset``."""
    _load()
    if domain not in ("", "ai.onnx"):
        return None
    best = None
    for k in _REGISTRY.get(op_type, []):
        if k.since <= opset:
            best = k
    return best


def supported_ops() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def versions_of(op_type: str) -> list[int]:
    _load()
    return [k.since for k in _REGISTRY.get(op_type, [])]


# ---- helpers shared by kernel files -----------------------------------------------------

def np_dtype(to: int) -> np.dtype:
    from runtime import ir

    return ir.onnx_dtype_to_numpy(int(to))


def ints(v) -> list[int]:
    """A host int64 array (or list / None) as a Python list of ints."""
    if v is None:
        return []
    return [int(i) for i in np.asarray(v).reshape(-1)]


def norm_axis(axis: int, rank: int) -> int:
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return a
