"""The CPU provider's operator registry: one entry per (domain, op, since-version).

Every op is registered once, with the decorator below, in the file of its family under
``providers/cpu/ops/``. An entry carries:

- ``compute``: the numpy implementation, exact to the ONNX spec. It is the reference and the
  path for dtypes or attribute combinations the C++ kernels do not take. It is called as
  ``compute(*inputs, **attrs)``: inputs positionally (``None`` for an absent optional input),
  attributes as keyword arguments with their ONNX defaults written in the signature. A function
  that also needs the node's context (its opset, the number of outputs asked for, subgraph
  runners) declares a keyword-only ``_ctx`` parameter and receives an :class:`OpContext`.
  It returns one array or a tuple/list of arrays (one per output).
- ``native``: optional lowering to a C++ kernel of ``ferry_kernels``. Called with the concrete
  input arrays (``None`` for absent ones) and the attributes with defaults filled in; returns a
  :class:`NativeCall` or ``None`` when this instance (dtype, attribute combination) must take
  the numpy path. Lowering is decided in Python; the kernel only computes.
- ``shape_inputs``: indices of inputs whose *values* decide the output shape (Reshape's
  ``shape``, Expand's ``shape``, Slice's ``starts``...). The executor uses them to tell whether a
  partition's shapes are fixed by its input shapes alone (then it compiles a C++ plan with a
  memory arena) or depend on data (then it runs node by node).
- ``dynamic_shape``: the output shape depends on input data in a way no shape input captures
  (NonZero, Unique, NonMaxSuppression, control flow...).
- ``value_from_shape``: the output's value depends only on input shapes (Shape, Size).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_DOMAIN = ""
ML_DOMAIN = "ai.onnx.ml"
MS_DOMAIN = "com.microsoft"
FERRY_DOMAIN = "ferry"


def normalize_domain(domain: str | None) -> str:
    """ONNX spells the default domain both "" and "ai.onnx"."""
    return "" if domain in (None, "", "ai.onnx") else domain


@dataclass
class NativeCall:
    """How to run one node on a C++ kernel for one set of input shapes.

    ``kernel`` is a name from ``ferry_kernels.kernel_names()``; ``params`` the fully resolved
    parameters it takes (no ONNX defaults left to apply in C++); ``output_shapes`` and
    ``output_dtypes`` the outputs it writes. ``inputs`` selects and orders which node inputs the
    kernel receives (default: all, ``None`` kept for absent optional inputs). ``constant_inputs``
    lists positions (into the kernel's inputs) that may be packed once at plan time when
    the value is a constant of the graph (weights).
    """

    kernel: str
    params: dict[str, Any]
    output_shapes: list[tuple[int, ...]]
    output_dtypes: list[np.dtype]
    inputs: list[int] | None = None
    constant_inputs: tuple[int, ...] = ()


@dataclass
class OpContext:
    """What a numpy implementation may need beyond its inputs and attributes."""

    node_name: str
    op_type: str
    domain: str
    opset: int
    num_outputs: int
    # Runs a nested graph (If/Loop/Scan bodies): run_subgraph(graph, feeds) -> list of outputs,
    # where graph is the attribute value (a runtime.ir.Graph) and feeds maps the subgraph's
    # input names to values. Values of the enclosing scopes are visible to the subgraph.
    run_subgraph: Callable[[Any, dict[str, Any]], list] | None = None
    # Values visible from the enclosing scope, for subgraphs.
    outer_scope: dict[str, Any] = field(default_factory=dict)
    # The session's random generator for RandomNormal/RandomUniform... without a seed.
    rng: np.random.Generator | None = None


@dataclass
class OpImpl:
    op_type: str
    domain: str
    since: int
    compute: Callable[..., Any]
    native: Callable[[Sequence[np.ndarray | None], dict[str, Any]], NativeCall | None] | None
    shape_inputs: tuple[int, ...]
    dynamic_shape: bool
    value_from_shape: bool
    wants_ctx: bool
    defaults: dict[str, Any]
    accepts_any_attr: bool

    def attrs_with_defaults(self, attrs: dict[str, Any]) -> dict[str, Any]:
        merged = dict(self.defaults)
        merged.update(attrs)
        return merged

    def call(self, inputs: Sequence[Any], attrs: dict[str, Any], ctx: OpContext | None) -> list:
        """Run the numpy implementation; always returns a list of outputs."""
        kwargs = attrs if self.accepts_any_attr else {
            k: v for k, v in attrs.items() if k in self.defaults
        }
        if self.wants_ctx:
            out = self.compute(*inputs, _ctx=ctx, **kwargs)
        else:
            out = self.compute(*inputs, **kwargs)
        if isinstance(out, (tuple, list)):
            return list(out)
        return [out]


# (domain, op_type) -> list of OpImpl sorted by since-version.
_REGISTRY: dict[tuple[str, str], list[OpImpl]] = {}


def register(
    op_type: str,
    since: int = 1,
    domain: str = DEFAULT_DOMAIN,
    *,
    native: Callable | None = None,
    shape_inputs: tuple[int, ...] = (),
    dynamic_shape: bool = False,
    value_from_shape: bool = False,
):
    """Decorator registering a numpy implementation (and optional C++ lowering) of one op.

    Several versions of an op register with different ``since`` values; lookup picks the newest
    one whose ``since`` is at most the model's opset for that domain.
    """

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        defaults: dict[str, Any] = {}
        wants_ctx = False
        accepts_any = False
        for p in sig.parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                if p.name == "_ctx":
                    wants_ctx = True
                else:
                    defaults[p.name] = None if p.default is inspect.Parameter.empty else p.default
            elif p.kind is inspect.Parameter.VAR_KEYWORD:
                accepts_any = True
        impl = OpImpl(
            op_type=op_type,
            domain=normalize_domain(domain),
            since=since,
            compute=fn,
            native=native,
            shape_inputs=tuple(shape_inputs),
            dynamic_shape=dynamic_shape,
            value_from_shape=value_from_shape,
            wants_ctx=wants_ctx,
            defaults=defaults,
            accepts_any_attr=accepts_any,
        )
        versions = _REGISTRY.setdefault((impl.domain, op_type), [])
        if any(v.since == since for v in versions):
            raise RuntimeError(f"{domain or 'ai.onnx'}::{op_type} since {since} registered twice")
        versions.append(impl)
        versions.sort(key=lambda v: v.since)
        return fn

    return decorate


def lookup(op_type: str, domain: str, opset: int) -> OpImpl | None:
    """Newest implementation of ``op_type`` whose since-version is <= ``opset``."""
    versions = _REGISTRY.get((normalize_domain(domain), op_type))
    if not versions:
        return None
    best = None
    for v in versions:
        if v.since <= opset:
            best = v
    return best


def versions_of(op_type: str, domain: str) -> list[int]:
    return [v.since for v in _REGISTRY.get((normalize_domain(domain), op_type), [])]


def registered_ops() -> list[tuple[str, str]]:
    """Every (domain, op_type) with at least one implementation."""
    _load_all()
    return sorted(_REGISTRY)


_LOADED = False


def _load_all() -> None:
    """Import every module under providers/cpu/ops so that their decorators run."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil

    from providers.cpu import ops as ops_pkg

    for info in pkgutil.iter_modules(ops_pkg.__path__):
        importlib.import_module(f"{ops_pkg.__name__}.{info.name}")
    _LOADED = True


def get(op_type: str, domain: str, opset: int) -> OpImpl | None:
    _load_all()
    return lookup(op_type, domain, opset)
