"""Find the first node where two runtimes disagree (numeric bisection over the graph).

Both sides run a copy of the model in which every node output is also a graph output, once
each, on the same inputs. Nodes are then visited in topological order; the first whose output
differs beyond tolerance is reported, with the size of the error and whether the node's own
inputs agreed. When they agreed, the divergence starts at that node (its kernel, or the
provider that ran it); when they did not (an input that could not be compared), the culprit
lies upstream.

    from runtime.compare import compare_model
    report = compare_model("model.onnx", ["openvino", "cpu"], against="onnxruntime")
    print(report.summary())
    if report.first_divergence:
        print(report.first_divergence.node, report.first_divergence.max_abs_error)

``against`` is a ferry provider list (``["cpu"]``, ``"cpu"``) or ``"onnxruntime"`` (the oracle).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

ORT = "onnxruntime"


@dataclass
class ValueDiff:
    """How one value differs between side A and side B."""

    name: str
    ok: bool
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    mismatched: int = 0        # elements beyond tolerance
    size: int = 0
    note: str = ""             # why it could not be compared numerically (shape, dtype, missing)
    compared: bool = True      # False: the value could not be exposed (type unknown)
    ref_max_abs: float = 0.0   # largest |value| on side B: the scale the errors compare with


@dataclass
class NodeDiff:
    """The comparison of every output of one node, and of its inputs."""

    index: int                 # position in topological order
    node: str
    op: str
    domain: str
    outputs: list[ValueDiff]
    inputs: list[ValueDiff]
    provider_a: str | None = None
    provider_b: str | None = None

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def inputs_agreed(self) -> bool:
        return all(i.ok for i in self.inputs)

    @property
    def worst(self) -> ValueDiff:
        bad = [o for o in self.outputs if not o.ok] or self.outputs
        return max(bad, key=lambda d: (not d.ok, d.max_abs_error))

    @property
    def max_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((o.max_rel_error for o in self.outputs), default=0.0)


@dataclass
class CompareReport:
    """Result of :func:`compare_model`."""

    model: str
    side_a: str
    side_b: str
    rtol: float
    atol: float
    nodes: list[NodeDiff] = field(default_factory=list)
    graph_outputs: list[ValueDiff] = field(default_factory=list)  # of the unmodified model
    first_divergence: NodeDiff | None = None
    feeds: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.first_divergence is None and all(o.ok for o in self.graph_outputs)

    @property
    def divergent_nodes(self) -> list[NodeDiff]:
        return [n for n in self.nodes if not n.ok]

    def to_dict(self) -> dict[str, Any]:
        def node(n: NodeDiff) -> dict[str, Any]:
            d = asdict(n)
            d.update(ok=n.ok, inputs_agreed=n.inputs_agreed)
            return d

        return {
            "model": self.model, "side_a": self.side_a, "side_b": self.side_b,
            "rtol": self.rtol, "atol": self.atol, "ok": self.ok,
            "nodes_compared": len(self.nodes), "nodes_diverging": len(self.divergent_nodes),
            "first_divergence": node(self.first_divergence) if self.first_divergence else None,
            "graph_outputs": [asdict(o) for o in self.graph_outputs],
            "nodes": [node(n) for n in self.nodes],
        }

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [(f"compared   {len(self.nodes)} node(s): {self.side_a}  vs  {self.side_b} "
                  f"(rtol {self.rtol:g}, atol {self.atol:g})")]
        d = self.first_divergence
        if d is None:
            bad = [o.name for o in self.graph_outputs if not o.ok]
            if bad:
                worst = max((o for o in self.graph_outputs if not o.ok),
                            key=lambda o: o.max_abs_error)
                note = f"; {worst.note}" if worst.note else ""
                lines.append(f"result     every intermediate agrees, but the graph output(s) "
                             f"{', '.join(bad)} differ when the model runs unmodified (max abs "
                             f"error {worst.max_abs_error:.4g}{note})")
                lines.append("           exposing the intermediates disabled a fusion or "
                             "rewrite: the divergence is in an optimized (fused) kernel")
            else:
                lines.append("result     every node output agrees within tolerance")
            return "\n".join(lines)
        w = d.worst
        where = f" (ran on {d.provider_a})" if d.provider_a else ""
        lines.append(f"diverges   node #{d.index} '{d.node}' ({_op_name(d.op, d.domain)}){where}")
        if w.note:
            lines.append(f"output     {w.name}: {w.note}")
        else:
            lines.append(f"output     {w.name}: max abs error {w.max_abs_error:.4g} (values up "
                         f"to {w.ref_max_abs:.4g}), max rel error {w.max_rel_error:.4g}, "
                         f"{w.mismatched} of {w.size} element(s) beyond tolerance")
        if d.inputs_agreed:
            lines.append("inputs     agreed (within tolerance): the divergence starts at this node")
        else:
            bad = ", ".join(f"{i.name} ({i.note or f'max abs error {i.max_abs_error:.4g}'})"
                            for i in d.inputs if not i.ok)
            lines.append(f"inputs     did NOT agree: {bad}; the cause lies upstream")
        lines.append(f"downstream {len(self.divergent_nodes) - 1} more node(s) diverge after it")
        for o in self.graph_outputs:
            state = "within tolerance" if o.ok else f"{o.mismatched} of {o.size} beyond tolerance"
            lines.append(f"model out  {o.name}: max abs error {o.max_abs_error:.4g}, max rel "
                         f"error {o.max_rel_error:.4g} ({o.note or state})")
        if self.graph_outputs and all(o.ok for o in self.graph_outputs):
            if w.mismatched <= max(1, w.size // 100) and not w.note:
                lines.append("note       the model's outputs agree and few elements differ: "
                             "likely rounding (summation order); raise --rtol/--atol to look "
                             "past it")
            else:
                lines.append("note       the model's outputs agree: the diverging value does "
                             "not reach them (unused, or washed out downstream)")
        return "\n".join(lines)


def _op_name(op: str, domain: str) -> str:
    return op if domain in ("", "ai.onnx") else f"{domain}::{op}"


# ---- the model with every intermediate exposed ---------------------------------------------

def _load_proto(model) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "<ModelProto>"
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model)), "<bytes>"
    path = os.fspath(model)
    if not os.path.isfile(path):
        from runtime.errors import NoSuchFile

        raise NoSuchFile(f"model file '{path}' does not exist")
    return onnx.load(path), path


def topological_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes with every producer before its consumers (stable)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    order: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                order.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            # Inputs produced nowhere (outer scope, malformed): keep the file's order for them.
            order.extend(rest)
            break
        pending = rest
    return order


def expose_intermediates(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` whose graph outputs also list every node output of the main graph.

    Returns the copy and the names of the outputs that were added. Types come from ONNX shape
    inference where it knows them; other outputs are declared by name only.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = copy.graph
    known: dict[str, onnx.ValueInfoProto] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(copy, strict_mode=False)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            known[vi.name] = vi
    except Exception:  # noqa: BLE001 - inference is only a help for the type declarations
        pass
    for vi in g.value_info:
        known.setdefault(vi.name, vi)
    existing = {o.name for o in g.output}
    skip = existing | {i.name for i in g.input} | {i.name for i in g.initializer}
    elem = _element_types(copy, known)
    added = []
    for n in g.node:
        for o in n.output:
            if not o or o in skip or o in added:
                continue
            vi = onnx.ValueInfoProto()
            if o in known and known[o].type.WhichOneof("value") is not None:
                vi.CopyFrom(known[o])
            elif o in elem:
                vi = onnx.helper.make_tensor_value_info(o, elem[o], None)
            else:
                continue  # no type: the checker would refuse the copy; this value is not compared
            g.output.append(vi)
            added.append(o)
    return copy, added


def _element_types(model: onnx.ModelProto, known: dict[str, onnx.ValueInfoProto]
                   ) -> dict[str, int]:
    """Tensor element types of node outputs, where shape inference gave up: from the op
    schema's type constraints (an output typed like an input, or a constraint with one type)."""
    g = model.graph
    types: dict[str, int] = {}
    for vi in list(g.input) + list(known.values()):
        if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    opsets = {(imp.domain if imp.domain != "ai.onnx" else ""): imp.version
              for imp in model.opset_import}
    for n in topological_nodes(g):
        if all(o in types for o in n.output if o):
            continue
        try:
            schema = onnx.defs.get_schema(n.op_type, opsets.get(n.domain, 1), n.domain)
        except Exception:  # noqa: BLE001 - custom ops: nothing known
            continue
        constraints = {c.type_param_str: list(c.allowed_type_strs)
                       for c in schema.type_constraints}
        bound: dict[str, int] = {}
        for k, i in enumerate(n.input):
            if not i or i not in types or not schema.inputs:
                continue
            formal = schema.inputs[min(k, len(schema.inputs) - 1)]
            bound.setdefault(formal.type_str, types[i])
        for k, o in enumerate(n.output):
            if not o or o in types or k >= len(schema.outputs):
                continue
            ts = schema.outputs[k].type_str
            if ts in bound:
                types[o] = bound[ts]
            else:
                allowed = constraints.get(ts, [ts])
                if len(allowed) == 1 and allowed[0].startswith("tensor("):
                    name = allowed[0][len("tensor("):-1]
                    code = _TENSOR_TYPE_CODES.get(name)
                    if code:
                        types[o] = code
    return types


_TENSOR_TYPE_CODES = {
    "float": onnx.TensorProto.FLOAT, "double": onnx.TensorProto.DOUBLE,
    "float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16,
    "int64": onnx.TensorProto.INT64, "int32": onnx.TensorProto.INT32,
    "int16": onnx.TensorProto.INT16, "int8": onnx.TensorProto.INT8,
    "uint64": onnx.TensorProto.UINT64, "uint32": onnx.TensorProto.UINT32,
    "uint16": onnx.TensorProto.UINT16, "uint8": onnx.TensorProto.UINT8,
    "bool": onnx.TensorProto.BOOL, "string": onnx.TensorProto.STRING,
}


# ---- running one side ----------------------------------------------------------------------

def _side_name(side) -> str:
    if isinstance(side, str):
        return side
    return ",".join(p if isinstance(p, str) else p[0] for p in side)


def _run_side(side, model: onnx.ModelProto, feeds: dict, threads: int
              ) -> tuple[dict[str, Any], dict[str, str]]:
    """Run ``model`` on one side; returns {output name: value} and {node name: provider}."""
    if isinstance(side, str) and side.lower() in (ORT, "ort"):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        # ORT's own fusions would change which values exist; compare what the graph says.
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, feeds)
        return dict(zip(names, values)), {}
    from runtime import InferenceSession, SessionOptions

    providers = side.split(",") if isinstance(side, str) else list(side)
    so = SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = InferenceSession(model, so, providers=providers)
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, feeds)
    where = {n["node"]: n["provider"] for n in sess.explain()["nodes"]}
    sess.close()
    return dict(zip(names, values)), where


# ---- comparing values ----------------------------------------------------------------------

def compare_values(name: str, a: Any, b: Any, rtol: float, atol: float) -> ValueDiff:
    """Compare two runtime values: |a - b| <= atol + rtol * |b| elementwise, NaNs equal."""
    if a is None or b is None:
        ok = a is None and b is None
        return ValueDiff(name, ok, note="" if ok else "present on one side only")
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or \
                len(a) != len(b):
            return ValueDiff(name, False, note="sequences of different lengths or kinds")
        parts = [compare_values(f"{name}[{i}]", x, y, rtol, atol) for i, (x, y) in
                 enumerate(zip(a, b))]
        bad = [p for p in parts if not p.ok]
        return ValueDiff(name, not bad, max((p.max_abs_error for p in parts), default=0.0),
                         max((p.max_rel_error for p in parts), default=0.0),
                         sum(p.mismatched for p in parts), sum(p.size for p in parts),
                         bad[0].note if bad else "")
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return ValueDiff(name, False, size=int(b.size),
                         note=f"shape {list(a.shape)} vs {list(b.shape)}")
    if a.dtype != b.dtype:
        return ValueDiff(name, False, size=int(b.size), note=f"dtype {a.dtype} vs {b.dtype}")
    if a.dtype.kind in "OUS":
        mism = int(np.sum(a != b))
        return ValueDiff(name, mism == 0, mismatched=mism, size=int(a.size),
                         note="" if mism == 0 else "strings differ")
    if a.size == 0:
        return ValueDiff(name, True)
    try:
        # 1-d views so that 0-d values index like the others
        x, y = a.astype(np.float64).reshape(-1), b.astype(np.float64).reshape(-1)
    except (TypeError, ValueError):
        mism = int(np.sum(a != b))
        return ValueDiff(name, mism == 0, mismatched=mism, size=int(a.size))
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    both_nan = nan_x & nan_y
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(x - y)
        diff[both_nan] = 0.0
        diff[x == y] = 0.0  # equal infinities
        bad = ~((diff <= atol + rtol * np.abs(y)) | (x == y) | both_nan)
        # relative error where the reference is non-zero (elsewhere only the absolute one means
        # anything)
        nonzero = (y != 0) & np.isfinite(y) & np.isfinite(diff)
        rel = diff[nonzero] / np.abs(y[nonzero])
    finite = np.isfinite(diff)
    max_abs = float(diff[finite].max()) if finite.any() else 0.0
    if not finite.all():
        max_abs = float("inf")
    max_rel = float(rel.max()) if rel.size else 0.0
    if (nan_x ^ nan_y).any():
        max_abs = max_rel = float("nan")
    mism = int(bad.sum())
    finite_y = np.abs(y[np.isfinite(y)])
    return ValueDiff(name, mism == 0, max_abs, max_rel, mism, int(a.size),
                     "NaN on one side only" if (nan_x ^ nan_y).any() else "",
                     ref_max_abs=float(finite_y.max()) if finite_y.size else 0.0)


# ---- the whole comparison ------------------------------------------------------------------

def random_feeds(model: onnx.ModelProto, dims: dict[str, int] | None = None,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matched to the model's declared types and shapes.

    Symbolic dimensions take their value from ``dims`` (1 when absent).
    """
    from onnx import helper

    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if vi.type.WhichOneof("value") != "tensor_type":
            raise ValueError(f"input '{vi.name}' is not a tensor; give it with feeds=")
        shape = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            else:
                shape.append(int((dims or {}).get(d.dim_param, 1)))
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[vi.name] = random_array(shape, dtype, rng, int_upper_bound(vi.name))
    return feeds


def int_upper_bound(name: str) -> int:
    """Exclusive upper bound of random integers for an input: 2 for masks and token types
    (BERT's token_type_ids index a 2-row table), 10 otherwise (small enough to index)."""
    low = name.lower()
    return 2 if any(k in low for k in ("mask", "type", "segment")) else 10


def random_array(shape, dtype, rng: np.random.Generator, high: int = 10) -> np.ndarray:
    """Random values of ``dtype``: normal floats, non-negative integers below ``high`` (safe
    as indices), random booleans, short strings."""
    dtype = np.dtype(dtype)
    if dtype == object or dtype.kind in "US":
        return np.array(["ferry"] * int(np.prod(shape, dtype=np.int64)),
                        dtype=object).reshape(shape)
    if dtype.kind == "f" or dtype.kind == "V":  # V: ml_dtypes (bfloat16, float8)
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, high, shape).astype(dtype)


def compare_model(model, providers: str | Sequence = "cpu", against: str | Sequence = ORT, *,
                  feeds: dict[str, Any] | None = None, dims: dict[str, int] | None = None,
                  rtol: float = 1e-3, atol: float = 1e-4, seed: int = 0,
                  threads: int = 0, whole: bool = True) -> CompareReport:
    """Run ``model`` on ``providers`` (side A) and on ``against`` (side B), keeping every
    intermediate tensor, and find the first node whose outputs diverge (see the module doc).

    ``model``: a path, bytes or ``onnx.ModelProto``. ``feeds``: the inputs (random ones matched
    to the declared types and shapes when omitted; ``dims`` sizes symbolic dimensions).
    ``whole``: also run the unmodified model on both sides and compare its outputs
    (``graph_outputs``), which catches errors of kernels that only exist after fusion.
    """
    proto, label = _load_proto(model)
    exposed, added = expose_intermediates(proto)
    exposed_names = set(added) | {o.name for o in proto.graph.output}
    if feeds is None:
        feeds = random_feeds(proto, dims, seed)
    values_a, where_a = _run_side(providers, exposed, feeds, threads)
    values_b, where_b = _run_side(against, exposed, feeds, threads)
    report = CompareReport(label, _side_name(providers), _side_name(against), rtol, atol,
                           feeds=dict(feeds))
    g = proto.graph
    known = {}  # value name -> ValueDiff; graph inputs and initializers are the same on both
    for vi in g.input:
        known[vi.name] = ValueDiff(vi.name, True, size=0)
    for init in g.initializer:
        known[init.name] = ValueDiff(init.name, True, size=0)
    for index, n in enumerate(topological_nodes(g)):
        name = n.name
        if not name:
            name = f"<{n.op_type} #{index}>"
        outs = []
        for o in n.output:
            if not o:
                continue
            if o not in exposed_names:
                d = ValueDiff(o, True, note="not compared (its type is unknown)", compared=False)
            elif o not in values_a or o not in values_b:
                miss = "side A" if o not in values_a else "side B"
                d = ValueDiff(o, False, note=f"not produced by {miss}")
            else:
                d = compare_values(o, values_a[o], values_b[o], rtol, atol)
            known[o] = d
            outs.append(d)
        ins = []
        for i in n.input:
            if not i:
                continue
            # values from an outer scope or nowhere count as agreeing: both sides see the same
            ins.append(known.get(i, ValueDiff(i, True)))
        nd = NodeDiff(index, name, n.op_type, n.domain, outs, ins,
                      where_a.get(n.name) if n.name else None,
                      where_b.get(n.name) if n.name else None)
        report.nodes.append(nd)
        if not nd.ok and report.first_divergence is None:
            report.first_divergence = nd
    if whole:
        # Exposing every intermediate keeps optimizers from fusing across them; the model as it
        # is runs once more per side so that a fused or rewritten kernel's error still shows.
        whole_a, _ = _run_side(providers, proto, feeds, threads)
        whole_b, _ = _run_side(against, proto, feeds, threads)
    else:
        whole_a, whole_b = values_a, values_b
    for o in g.output:
        if o.name in whole_a and o.name in whole_b:
            report.graph_outputs.append(compare_values(o.name, whole_a[o.name], whole_b[o.name],
                                                       rtol, atol))
    return report
