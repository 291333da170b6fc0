"""Common-subexpression elimination: two nodes with the same op, attributes and inputs compute
the same thing; the later one goes and its readers read the first. Equal small constants are
merged first so that exporters' repeated literals (the many copies of [0], [1], [-1]) do not
hide equal subexpressions."""

from __future__ import annotations

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import NONDETERMINISTIC_OPS, GraphView, rename_uses

_MERGE_CONST_MAX_BYTES = 1 << 16


def _attr_key(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    if isinstance(value, (int, float, str, bytes, bool)) or value is None:
        return value
    return ("id", id(value))  # graphs, type protos: equal only to themselves


def eliminate_common_subexpressions(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    rename: dict[str, str] = {}

    # 1. Equal small constants.
    seen_const: dict[tuple, str] = {}
    for name, value in list(graph.initializers.items()):
        if view.const(name) is None or name in view.protected or \
                value.nbytes > _MERGE_CONST_MAX_BYTES or value.dtype == object:
            continue
        key = (value.dtype.str, value.shape, value.tobytes())
        if key in seen_const:
            rename[name] = seen_const[key]
        else:
            seen_const[key] = name

    # 2. Equal nodes, in order (inputs already renamed when their producers merged).
    seen: dict[tuple, ir.Node] = {}
    kept: list[ir.Node] = []
    for node in graph.nodes:
        node.inputs = [rename.get(i, i) if i else i for i in node.inputs]
        if node.op_type in NONDETERMINISTIC_OPS or any(True for _ in node.subgraphs()):
            kept.append(node)
            continue
        key = (node.domain, node.op_type, tuple(node.inputs), len(node.outputs),
               tuple(sorted((k, _attr_key(v)) for k, v in node.attrs.items())))
        first = seen.get(key)
        if first is None or any(o in view.protected for o in node.outputs if o) or \
                any(bool(a) != bool(b) for a, b in zip(first.outputs, node.outputs)):
            seen.setdefault(key, node)
            kept.append(node)
            continue
        for a, b in zip(node.outputs, first.outputs):
            if a:
                rename[a] = b
    if not rename:
        return False
    graph.nodes = kept
    rename_uses(graph, rename)
    for name in list(rename):
        graph.initializers.pop(name, None)
    return True
