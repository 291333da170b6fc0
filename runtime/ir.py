"""ferry's in-memory graph: the structure every pass and the partitioner work on.

Passes never touch protobuf: :func:`graph_from_onnx` converts once, :func:`graph_to_onnx`
converts back (for saving optimized models and handing subgraphs to compiled providers).
Nested graphs (If/Loop/Scan bodies) are :class:`Graph` objects held in node attributes, with
``parent`` pointing at the enclosing graph so outer-scope names resolve.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from runtime.errors import InvalidGraph

# --------------------------------------------------------------------------------------------
# Types


@dataclass
class ValueInfo:
    """Name, element type and shape of a value. ``shape`` entries are ints, symbolic names
    (str), or None for an unknown dim; ``shape is None`` means unknown rank. ``kind`` is
    "tensor", "sequence", "optional", "map" or "sparse_tensor"; ``type_proto`` keeps the full
    ONNX type for the non-tensor kinds."""

    name: str
    elem_type: int = 0  # TensorProto.DataType; 0 when unknown
    shape: tuple | None = None
    kind: str = "tensor"
    type_proto: onnx.TypeProto | None = None

    @property
    def dtype(self) -> np.dtype | None:
        return onnx_dtype_to_numpy(self.elem_type) if self.elem_type else None

    @property
    def type_string(self) -> str:
        """ORT's type strings: tensor(float), seq(tensor(int64)), optional(...), map(...)."""
        if self.type_proto is not None:
            return type_proto_string(self.type_proto)
        return f"tensor({tensor_type_name(self.elem_type)})"


_TYPE_NAMES = {
    TensorProto.FLOAT: "float", TensorProto.DOUBLE: "double", TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16", TensorProto.INT8: "int8", TensorProto.INT16: "int16",
    TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16", TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64",
    TensorProto.BOOL: "bool", TensorProto.STRING: "string", TensorProto.COMPLEX64: "complex64",
    TensorProto.COMPLEX128: "complex128",
}


def tensor_type_name(elem_type: int) -> str:
    if elem_type in _TYPE_NAMES:
        return _TYPE_NAMES[elem_type]
    if not elem_type:
        return "undefined"
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"unknown-type-{elem_type}"


def type_proto_string(tp: onnx.TypeProto) -> str:
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return f"tensor({tensor_type_name(tp.tensor_type.elem_type)})"
    if which == "sequence_type":
        return f"seq({type_proto_string(tp.sequence_type.elem_type)})"
    if which == "optional_type":
        return f"optional({type_proto_string(tp.optional_type.elem_type)})"
    if which == "map_type":
        key = tensor_type_name(tp.map_type.key_type)
        return f"map({key},{type_proto_string(tp.map_type.value_type)})"
    if which == "sparse_tensor_type":
        return f"sparse_tensor({tensor_type_name(tp.sparse_tensor_type.elem_type)})"
    return "undefined"


def onnx_dtype_to_numpy(elem_type: int) -> np.dtype:
    if elem_type == TensorProto.STRING:
        return np.dtype(object)
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def numpy_dtype_to_onnx(dtype) -> int:
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(dtype)


def value_info_from_onnx(vi: onnx.ValueInfoProto) -> ValueInfo:
    return value_info_from_type(vi.name, vi.type)


def value_info_from_type(name: str, tp: onnx.TypeProto) -> ValueInfo:
    which = tp.WhichOneof("value")
    if which == "tensor_type" or which == "sparse_tensor_type":
        tt = tp.tensor_type if which == "tensor_type" else tp.sparse_tensor_type
        shape = None
        if tt.HasField("shape"):
            dims: list = []
            for d in tt.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                elif d.HasField("dim_param") and d.dim_param:
                    dims.append(d.dim_param)
                else:
                    dims.append(None)
            shape = tuple(dims)
        kind = "tensor" if which == "tensor_type" else "sparse_tensor"
        return ValueInfo(name, tt.elem_type, shape, kind,
                         None if which == "tensor_type" else tp)
    kinds = {"sequence_type": "sequence", "optional_type": "optional", "map_type": "map"}
    return ValueInfo(name, 0, None, kinds.get(which, "unknown"), tp)


def value_info_to_onnx(vi: ValueInfo) -> onnx.ValueInfoProto:
    if vi.type_proto is not None:
        out = onnx.ValueInfoProto()
        out.name = vi.name
        out.type.CopyFrom(vi.type_proto)
        return out
    return helper.make_tensor_value_info(vi.name, vi.elem_type or TensorProto.UNDEFINED,
                                         None if vi.shape is None else list(vi.shape))


# --------------------------------------------------------------------------------------------
# Nodes and graphs


@dataclass(eq=False)
class Node:
    """One operator application. ``inputs`` holds '' for an absent optional input."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""
    doc_string: str = ""

    def subgraphs(self) -> Iterator["Graph"]:
        for v in self.attrs.values():
            if isinstance(v, Graph):
                yield v
            elif isinstance(v, list):
                for g in v:
                    if isinstance(g, Graph):
                        yield g

    @property
    def display(self) -> str:
        return f"'{self.name}' ({self.domain + '::' if self.domain else ''}{self.op_type})"

    def __repr__(self) -> str:
        return f"Node({self.op_type}, name={self.name!r}, in={self.inputs}, out={self.outputs})"


@dataclass(eq=False)
class Graph:
    name: str
    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    value_info: dict[str, ValueInfo] = field(default_factory=dict)
    opsets: dict[str, int] = field(default_factory=dict)
    parent: "Graph | None" = None
    doc_string: str = ""
    # Sparse initializers are densified on load; kept here for reference.
    sparse_names: set[str] = field(default_factory=set)

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.outputs]

    def opset(self, domain: str) -> int:
        domain = "" if domain in ("", "ai.onnx") else domain
        g: Graph | None = self
        while g is not None:
            if domain in g.opsets:
                return g.opsets[domain]
            g = g.parent
        return 1

    def lookup_info(self, name: str) -> ValueInfo | None:
        for vi in itertools.chain(self.inputs, self.outputs):
            if vi.name == name:
                return vi
        return self.value_info.get(name)

    def producers(self) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for n in self.nodes:
            for o in n.outputs:
                if o:
                    out[o] = n
        return out

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for name in node_all_inputs(n):
                out.setdefault(name, []).append(n)
        return out

    def outer_references(self) -> set[str]:
        """Names this graph (and its nested graphs) read but does not define: outer scope."""
        defined = set(self.input_names) | set(self.initializers)
        for n in self.nodes:
            defined.update(o for o in n.outputs if o)
        used: set[str] = set()
        for n in self.nodes:
            used.update(i for i in n.inputs if i)
            for g in n.subgraphs():
                used.update(g.outer_references())
        used.update(self.output_names)
        return used - defined

    def walk(self) -> Iterator[tuple["Graph", Node]]:
        """Every node of this graph and of its nested graphs, depth first."""
        for n in self.nodes:
            yield self, n
            for g in n.subgraphs():
                yield from g.walk()


def node_all_inputs(node: Node) -> list[str]:
    """Explicit inputs plus the outer-scope names its subgraphs read (implicit inputs)."""
    names = [i for i in node.inputs if i]
    for g in node.subgraphs():
        for ref in sorted(g.outer_references()):
            if ref not in names:
                names.append(ref)
    return names


def topological_sort(graph: Graph) -> list[Node]:
    """Nodes in an order where every producer precedes its consumers (stable: keeps the
    file's order where it is already valid). Raises InvalidGraph on a cycle or a name that
    nothing defines."""
    available = set(graph.input_names) | set(graph.initializers)
    g = graph.parent
    while g is not None:  # outer scopes
        available |= set(g.input_names) | set(g.initializers)
        available |= {o for n in g.nodes for o in n.outputs if o}
        g = g.parent
    producers: dict[str, Node] = {}
    for n in graph.nodes:
        for o in n.outputs:
            if not o:
                continue
            if o in producers or o in graph.initializers or o in graph.input_names:
                raise InvalidGraph(f"value '{o}' is defined more than once (by node {n.display})")
            producers[o] = n
    pending: dict[Node, int] = {}
    waiting: dict[str, list[Node]] = {}
    ready: list[Node] = []
    for n in graph.nodes:
        missing = 0
        for name in set(node_all_inputs(n)):
            if name in available:
                continue
            if name not in producers:
                raise InvalidGraph(
                    f"node {n.display} reads '{name}', which no node, input or initializer "
                    "defines")
            missing += 1
            waiting.setdefault(name, []).append(n)
        pending[n] = missing
        if missing == 0:
            ready.append(n)
    index = {n: i for i, n in enumerate(graph.nodes)}
    order: list[Node] = []
    import heapq

    heap = [(index[n], id(n), n) for n in ready]
    heapq.heapify(heap)
    while heap:
        _, _, n = heapq.heappop(heap)
        order.append(n)
        for o in n.outputs:
            for consumer in waiting.pop(o, []) if o else []:
                pending[consumer] -= 1
                if pending[consumer] == 0:
                    heapq.heappush(heap, (index[consumer], id(consumer), consumer))
    if len(order) != len(graph.nodes):
        stuck = [n for n in graph.nodes if pending[n] > 0]
        names = ", ".join(n.display for n in stuck[:5])
        raise InvalidGraph(f"the graph has a cycle; nodes that can never run: {names}")
    return order


# --------------------------------------------------------------------------------------------
# Attributes


def attribute_value(attr: AttributeProto, parent: Graph | None = None, base_dir: str | None = None):
    """An ONNX attribute as a Python value: int, float, str, np.ndarray, Graph, TypeProto or a
    list of those. STRING attributes are decoded to str (bytes kept when not UTF-8)."""
    t = attr.type
    if t == AttributeProto.INT:
        return int(attr.i)
    if t == AttributeProto.FLOAT:
        return float(attr.f)
    if t == AttributeProto.STRING:
        return _decode(attr.s)
    if t == AttributeProto.TENSOR:
        return tensor_to_numpy(attr.t, base_dir)
    if t == AttributeProto.GRAPH:
        return graph_from_onnx(attr.g, parent=parent, base_dir=base_dir)
    if t == AttributeProto.SPARSE_TENSOR:
        return sparse_to_numpy(attr.sparse_tensor, base_dir)
    if t == AttributeProto.TYPE_PROTO:
        return attr.tp
    if t == AttributeProto.INTS:
        return [int(v) for v in attr.ints]
    if t == AttributeProto.FLOATS:
        return [float(v) for v in attr.floats]
    if t == AttributeProto.STRINGS:
        return [_decode(s) for s in attr.strings]
    if t == AttributeProto.TENSORS:
        return [tensor_to_numpy(x, base_dir) for x in attr.tensors]
    if t == AttributeProto.GRAPHS:
        return [graph_from_onnx(g, parent=parent, base_dir=base_dir) for g in attr.graphs]
    if t == AttributeProto.SPARSE_TENSORS:
        return [sparse_to_numpy(x, base_dir) for x in attr.sparse_tensors]
    if t == AttributeProto.TYPE_PROTOS:
        return list(attr.type_protos)
    raise InvalidGraph(f"attribute '{attr.name}' has an unknown type {t}")


def _decode(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def make_attribute(name: str, value: Any) -> AttributeProto:
    """Inverse of :func:`attribute_value` (used when writing graphs back to ONNX)."""
    if isinstance(value, Graph):
        return helper.make_attribute(name, graph_to_onnx(value))
    if isinstance(value, np.ndarray):
        return helper.make_attribute(name, numpy_to_tensor(value, name))
    if isinstance(value, list) and value and isinstance(value[0], Graph):
        return helper.make_attribute(name, [graph_to_onnx(g) for g in value])
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return helper.make_attribute(name, [numpy_to_tensor(v, name) for v in value])
    if isinstance(value, onnx.TypeProto):
        attr = AttributeProto()
        attr.name = name
        attr.type = AttributeProto.TYPE_PROTO
        attr.tp.CopyFrom(value)
        return attr
    return helper.make_attribute(name, value)


# --------------------------------------------------------------------------------------------
# Tensors


_FAST_RAW_TYPES = {TensorProto.FLOAT: np.dtype("<f4"), TensorProto.DOUBLE: np.dtype("<f8"),
                   TensorProto.INT64: np.dtype("<i8"), TensorProto.INT32: np.dtype("<i4"),
                   TensorProto.INT8: np.dtype("i1"), TensorProto.UINT8: np.dtype("u1"),
                   TensorProto.FLOAT16: np.dtype("<f2")} if sys.byteorder == "little" else {}


def tensor_to_numpy(t: TensorProto, base_dir: str | None = None) -> np.ndarray:
    """TensorProto -> numpy, with ml_dtypes for bfloat16/float8/int4 and str for strings.
    External data must already be loaded (runtime.model does it, confined to the model's
    folder)."""
    if t.data_location == TensorProto.EXTERNAL:
        raise InvalidGraph(f"tensor '{t.name}' uses external data that was not loaded")
    fast = _FAST_RAW_TYPES.get(t.data_type)
    if fast is not None and t.raw_data:
        # Plain little-endian numbers: a view of the bytes (one copy out of protobuf, none
        # after), read-only like every constant.
        raw = t.raw_data
        dims = tuple(int(d) for d in t.dims)
        if len(raw) != int(np.prod(dims, dtype=np.int64)) * fast.itemsize:
            raise InvalidGraph(f"tensor '{t.name}' has {len(raw)} bytes of raw data; its shape "
                               f"{list(dims)} needs {int(np.prod(dims)) * fast.itemsize}")
        return np.frombuffer(raw, dtype=fast).reshape(dims)
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:  # malformed raw_data length, unknown type...
        raise InvalidGraph(f"tensor '{t.name}' cannot be decoded: {exc}") from None
    if arr.dtype == object:
        arr = np.array([_decode(x) if isinstance(x, bytes) else x for x in arr.ravel()],
                       dtype=object).reshape(arr.shape)
    return arr


def sparse_to_numpy(sp: onnx.SparseTensorProto, base_dir: str | None = None) -> np.ndarray:
    values = tensor_to_numpy(sp.values, base_dir)
    indices = tensor_to_numpy(sp.indices, base_dir).astype(np.int64)
    dims = tuple(int(d) for d in sp.dims)
    dense = np.zeros(dims, dtype=values.dtype)
    flat = dense.reshape(-1)
    if indices.ndim == 1:
        flat[indices] = values
    else:
        flat[np.ravel_multi_index(tuple(indices.T), dims)] = values
    return dense


def numpy_to_tensor(arr: np.ndarray, name: str = "") -> TensorProto:
    arr = np.asarray(arr)
    if arr.dtype == object or arr.dtype.kind in "US":
        t = helper.make_tensor(name, TensorProto.STRING, arr.shape,
                               [s.encode() if isinstance(s, str) else s for s in arr.ravel()])
        return t
    return numpy_helper.from_array(arr, name)


# --------------------------------------------------------------------------------------------
# Conversion


_anon = itertools.count()


def graph_from_onnx(gp: onnx.GraphProto, opsets: dict[str, int] | None = None,
                    parent: Graph | None = None, base_dir: str | None = None) -> Graph:
    graph = Graph(name=gp.name or "graph", nodes=[], inputs=[], outputs=[],
                  opsets=dict(opsets or {}), parent=parent, doc_string=gp.doc_string)
    for init in gp.initializer:
        if init.name in graph.initializers:
            raise InvalidGraph(f"initializer '{init.name}' is defined twice")
        graph.initializers[init.name] = tensor_to_numpy(init, base_dir)
    for sp in gp.sparse_initializer:
        name = sp.values.name
        graph.initializers[name] = sparse_to_numpy(sp, base_dir)
        graph.sparse_names.add(name)
    seen_inputs: set[str] = set()
    for vi in gp.input:
        if vi.name in seen_inputs:
            raise InvalidGraph(f"graph input '{vi.name}' is declared twice")
        seen_inputs.add(vi.name)
        graph.inputs.append(value_info_from_onnx(vi))
    graph.outputs = [value_info_from_onnx(vi) for vi in gp.output]
    for vi in gp.value_info:
        graph.value_info[vi.name] = value_info_from_onnx(vi)
    used_names: set[str] = set()
    for i, np_ in enumerate(gp.node):
        name = np_.name or f"{np_.op_type}_{i}"
        if name in used_names:
            name = f"{name}__{i}"
        used_names.add(name)
        node = Node(op_type=np_.op_type, inputs=list(np_.input), outputs=list(np_.output),
                    name=name, domain="" if np_.domain == "ai.onnx" else np_.domain,
                    doc_string=np_.doc_string)
        graph.nodes.append(node)
        for a in np_.attribute:
            if a.ref_attr_name:
                raise InvalidGraph(
                    f"node {node.display}: attribute references ({a.name} -> {a.ref_attr_name}) "
                    "are only valid inside functions")
            node.attrs[a.name] = attribute_value(a, parent=graph, base_dir=base_dir)
    return graph


def graph_to_onnx(graph: Graph) -> onnx.GraphProto:
    nodes = []
    for n in graph.nodes:
        nodes.append(helper.make_node(
            n.op_type, n.inputs, n.outputs, name=n.name, domain=n.domain or None,
            doc_string=n.doc_string or None))
        nodes[-1].attribute.extend(make_attribute(k, v) for k, v in n.attrs.items())
    inits = [numpy_to_tensor(v, k) for k, v in graph.initializers.items()]
    return helper.make_graph(
        nodes, graph.name, [value_info_to_onnx(v) for v in graph.inputs],
        [value_info_to_onnx(v) for v in graph.outputs], initializer=inits,
        value_info=[value_info_to_onnx(v) for v in graph.value_info.values()
                    if v.elem_type or v.type_proto is not None],
        doc_string=graph.doc_string or None)


def used_names(graph: Graph) -> set[str]:
    names = set(graph.input_names) | set(graph.output_names) | set(graph.initializers)
    for n in graph.nodes:
        names.update(n.inputs)
        names.update(n.outputs)
    names.discard("")
    return names


def unique_name(prefix: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    while True:
        cand = f"{prefix}_{next(_anon)}"
        if cand not in taken:
            return cand
