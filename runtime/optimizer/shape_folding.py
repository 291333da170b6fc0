"""Shape-computation folding.

``Shape``/``Size`` of a value whose dimensions shape inference fixed become constants (then
constant folding carries them through Gather, Concat, Cast...). For dynamic dimensions, the
chains exporters emit to rebuild a shape — Shape → Gather → Unsqueeze → Concat → Reshape — are
evaluated symbolically: each element is an integer or "dimension d of value v". A Reshape whose
target shape is then fully expressible becomes a Reshape by a constant, with 0 meaning "copy
this dimension of the input" and one -1 for a single remaining unknown; the chain is left for
dead-code removal."""

from __future__ import annotations

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op

# A symbolic shape element: an int, or a hashable key naming one unknown dimension.
_Sym = "int | tuple"


def _dim_key(view: GraphView, value: str, axis: int, dim) -> _Sym:
    if isinstance(dim, int):
        return dim
    if isinstance(dim, str):
        return ("sym", dim)
    return ("dim", value, axis)


_SHAPE_CHAIN_OPS = ("Shape", "Gather", "Slice", "Squeeze", "Unsqueeze", "Concat")
_INT64 = 7


def fold_static_shapes(graph: ir.Graph) -> bool:
    """Shape/Size of static values, and shape arithmetic (Shape → Slice/Gather/Concat...) that
    only picks static dimensions of partly symbolic values, become constants."""
    view = GraphView(graph)
    sym = _Symbolic(view)
    changed = False
    kept = []
    for node in graph.nodes:
        out = node.outputs[0] if node.outputs else ""
        value = None
        if is_op(node, "Shape", "Size") and out and out not in view.protected:
            shape = view.static_shape(node.inputs[0])
            if shape is not None:
                if node.op_type == "Size":
                    value = np.asarray(int(np.prod(shape, dtype=np.int64)), np.int64)
                else:
                    start, end = _shape_range(node, len(shape))
                    value = np.asarray(shape[start:end], np.int64)
        if value is None and is_op(node, *_SHAPE_CHAIN_OPS) and out and \
                out not in view.protected and view.elem_type(out) == _INT64 and \
                len(node.outputs) == 1:
            got = sym(out)
            if got is not None and all(isinstance(e, int) for e in got[0]) and \
                    (not got[1] or len(got[0]) == 1):
                value = np.asarray(got[0][0] if got[1] else got[0], np.int64)
        if value is None:
            kept.append(node)
            continue
        graph.initializers[out] = value
        changed = True
    graph.nodes = kept
    return changed


def _shape_range(node: ir.Node, rank: int) -> tuple[int, int]:
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    end = rank if end is None else int(end)
    if start < 0:
        start += rank
    if end < 0:
        end += rank
    return max(0, min(start, rank)), max(0, min(end, rank))


class _Symbolic:
    """Evaluates small int64 tensors (1-D or scalars) built from shapes, element-wise."""

    def __init__(self, view: GraphView):
        self.view = view
        self.memo: dict[str, tuple[list, bool] | None] = {}

    def __call__(self, name: str):
        """-> (elements, is_scalar) or None when the value is not expressible."""
        if name not in self.memo:
            self.memo[name] = None  # cycles are impossible, but stay safe
            self.memo[name] = self._eval(name)
        return self.memo[name]

    def _ints(self, name: str) -> list[int] | None:
        c = self.view.const(name)
        if c is None or c.dtype.kind not in "iu" or c.ndim > 1:
            return None
        return [int(v) for v in np.atleast_1d(c)]

    def _eval(self, name: str):
        v = self.view
        c = v.const(name)
        if c is not None:
            if c.dtype.kind not in "iu" or c.ndim > 1 or c.size > 64:
                return None
            return [int(x) for x in np.atleast_1d(c)], c.ndim == 0
        node = v.producer.get(name)
        if node is None or node.outputs[0] != name:
            return None
        ins = node.inputs
        if is_op(node, "Shape"):
            shape = v.shape(ins[0])
            if shape is None:
                return None
            start, end = _shape_range(node, len(shape))
            return [_dim_key(v, ins[0], k, shape[k]) for k in range(start, end)], False
        if is_op(node, "Cast") and node.attrs.get("to") in (6, 7):
            return self(ins[0])
        if is_op(node, "Gather") and int(node.attrs.get("axis", 0)) == 0:
            data, idx = self(ins[0]), v.const(ins[1])
            if data is None or idx is None or data[1] or idx.ndim > 1:
                return None
            n = len(data[0])
            picked = []
            for k in np.atleast_1d(idx):
                k = int(k) + (n if int(k) < 0 else 0)
                if not 0 <= k < n:
                    return None
                picked.append(data[0][k])
            return picked, idx.ndim == 0
        if is_op(node, "Unsqueeze"):
            data = self(ins[0])
            axes = node.attrs.get("axes") if len(ins) < 2 else self._ints(ins[1])
            if data is None or not data[1] or list(axes or []) not in ([0], [-1]):
                return None
            return data[0], False
        if is_op(node, "Squeeze"):
            data = self(ins[0])
            if data is None or data[1] or len(data[0]) != 1:
                return None
            return data[0], True
        if is_op(node, "Concat") and int(node.attrs.get("axis", 0)) in (0, -1):
            parts = [self(i) for i in ins]
            if any(p is None or p[1] for p in parts):
                return None
            return [e for p in parts for e in p[0]], False
        if is_op(node, "Slice") and len(ins) >= 3:
            data = self(ins[0])
            starts, ends = self._ints(ins[1]), self._ints(ins[2])
            axes = self._ints(ins[3]) if len(ins) > 3 and ins[3] else [0]
            steps = self._ints(ins[4]) if len(ins) > 4 and ins[4] else [1]
            if data is None or data[1] or None in (starts, ends, axes, steps) or \
                    len(starts) != 1 or axes not in ([0], [-1]) or steps != [1]:
                return None
            return data[0][slice(starts[0], ends[0])], False
        return None


def collapse_shape_chains(graph: ir.Graph) -> bool:
    """Reshape by a shape computed from shapes → Reshape by a constant, where expressible."""
    view = GraphView(graph)
    sym = _Symbolic(view)
    changed = False
    for node in graph.nodes:
        if not is_op(node, "Reshape") or len(node.inputs) < 2 or \
                view.const(node.inputs[1]) is not None or int(node.attrs.get("allowzero", 0)):
            continue
        target = sym(node.inputs[1])
        if target is None or target[1]:
            continue
        data_shape = view.shape(node.inputs[0])
        data_keys = None if data_shape is None else \
            [_dim_key(view, node.inputs[0], k, d) for k, d in enumerate(data_shape)]
        resolved: list[int | None] = []
        for pos, e in enumerate(target[0]):
            if isinstance(e, int):
                resolved.append(e)
            elif data_keys is not None and pos < len(data_keys) and data_keys[pos] == e:
                resolved.append(0)  # the same (symbolic) dimension, same position: copy it
            else:
                resolved.append(None)
        unknown = resolved.count(None)
        if unknown > 1 or (unknown == 1 and -1 in resolved):
            continue
        shape = np.asarray([-1 if d is None else d for d in resolved], np.int64)
        node.inputs = [node.inputs[0], view.add_initializer(node.name or "shape", shape)]
        changed = True
    return changed
