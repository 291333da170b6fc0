"""ferry graphs -> ONNX ModelProtos that OpenVINO's ONNX frontend reads.

OpenVINO exchanges plain tensors with ferry: :data:`NUMPY_TYPES` lists the ONNX element types a
partition boundary may carry (those numpy and OpenVINO's Python API share without conversion).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from runtime import ir

NUMPY_TYPES = {
    TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
    TensorProto.FLOAT16: np.float16, TensorProto.INT8: np.int8, TensorProto.INT16: np.int16,
    TensorProto.INT32: np.int32, TensorProto.INT64: np.int64, TensorProto.UINT8: np.uint8,
    TensorProto.UINT16: np.uint16, TensorProto.UINT32: np.uint32,
    TensorProto.UINT64: np.uint64, TensorProto.BOOL: np.bool_,
}


def value_type_problem(graph: ir.Graph, name: str) -> str | None:
    """Why the value ``name`` cannot cross into OpenVINO, or None when it can (or is unknown)."""
    if name in graph.initializers:
        arr = graph.initializers[name]
        try:
            elem = ir.numpy_dtype_to_onnx(arr.dtype)
        except Exception:  # noqa: BLE001 - no ONNX type for this dtype
            return f"'{name}' has type {arr.dtype}"
        return None if elem in NUMPY_TYPES else f"'{name}' has type {arr.dtype}"
    vi = graph.lookup_info(name)
    if vi is None:
        return None
    if vi.kind != "tensor":
        return f"'{name}' is a {vi.kind}, OpenVINO partitions exchange tensors only"
    if vi.elem_type and vi.elem_type not in NUMPY_TYPES:
        return f"'{name}' has type {vi.type_string}"
    return None


def _opset_imports(opsets: dict[str, int]) -> list:
    out = []
    for domain, version in sorted(opsets.items()):
        out.append(helper.make_opsetid("" if domain in ("", "ai.onnx") else domain, version))
    if not any(o.domain == "" for o in out):
        out.append(helper.make_opsetid("", 17))
    return out


def make_model(nodes: list, inputs: list, outputs: list, initializers: dict,
               value_info: list, opsets: dict[str, int], name: str) -> onnx.ModelProto:
    """A ModelProto from ferry nodes, ValueInfos and numpy initializers."""
    graph = ir.Graph(name=name, nodes=list(nodes), inputs=list(inputs), outputs=list(outputs),
                     initializers=dict(initializers),
                     value_info={v.name: v for v in value_info}, opsets=dict(opsets))
    proto = helper.make_model(ir.graph_to_onnx(graph), opset_imports=_opset_imports(opsets),
                              producer_name="ferry")
    return proto


def typed_info(graph: ir.Graph, name: str) -> ir.ValueInfo:
    """The ValueInfo of ``name`` in ``graph`` (from the initializer when it is one)."""
    vi = graph.lookup_info(name)
    if vi is not None and vi.elem_type:
        return ir.ValueInfo(name, vi.elem_type, vi.shape, vi.kind, vi.type_proto)
    if name in graph.initializers:
        arr = graph.initializers[name]
        return ir.ValueInfo(name, ir.numpy_dtype_to_onnx(arr.dtype), tuple(arr.shape))
    return ir.ValueInfo(name) if vi is None else vi


def inner_value_info(graph: ir.Graph, nodes: list, exclude: set[str]) -> list[ir.ValueInfo]:
    """Known types of the values ``nodes`` produce (shape hints for the frontend)."""
    out = []
    for n in nodes:
        for o in n.outputs:
            if o and o not in exclude:
                vi = graph.lookup_info(o)
                if vi is not None and vi.kind == "tensor" and vi.elem_type:
                    out.append(vi)
    return out
