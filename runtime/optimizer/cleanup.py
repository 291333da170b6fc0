"""Small no-op eliminations: Cast to the type the value already has, Reshape that keeps every
axis (exporters reshape [b, H, s, d] to [0, -1, s, d]), and Reshape chains
(Reshape/Flatten/Squeeze/Unsqueeze followed by a Reshape to a constant shape, where only the
last shape matters)."""

from __future__ import annotations

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op, rename_uses


def _reshape_keeps_axes(view: GraphView, node: ir.Node) -> bool:
    """Reshape whose constant target names every input axis as it is: each entry copies (0)
    or equals the input's dimension, with at most one -1 (then forced equal as well)."""
    if len(node.inputs) < 2 or int(node.attrs.get("allowzero", 0)):
        return False
    target = view.const(node.inputs[1])
    shape = view.shape(node.inputs[0])
    if target is None or shape is None or target.ndim != 1 or len(target) != len(shape):
        return False
    t = [int(v) for v in target]
    if t.count(-1) > 1:
        return False
    return all(v == 0 or v == -1 or (isinstance(d, int) and v == d) for v, d in zip(t, shape))


def remove_noop_casts_and_reshapes(graph: ir.Graph) -> bool:
    """Casts to the value's own type and Reshapes that keep every axis."""
    view = GraphView(graph)
    rename: dict[str, str] = {}
    kept = []
    for node in graph.nodes:
        if node.outputs and node.outputs[0] not in view.protected and node.inputs and \
                node.inputs[0] and (
                    (is_op(node, "Cast") and
                     view.elem_type(node.inputs[0]) == node.attrs.get("to")) or
                    (is_op(node, "Reshape") and _reshape_keeps_axes(view, node))):
            rename[node.outputs[0]] = node.inputs[0]
            continue
        kept.append(node)
    if not rename:
        return False
    graph.nodes = kept
    rename_uses(graph, rename)
    return True


def merge_reshape_chains(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    for node in graph.nodes:
        if not is_op(node, "Reshape") or len(node.inputs) < 2:
            continue
        shape = view.const(node.inputs[1])
        if shape is None or int(node.attrs.get("allowzero", 0)) or (shape == 0).any():
            continue  # a 0 would copy a dimension of the intermediate value
        src = view.producer.get(node.inputs[0])
        if not is_op(src, "Reshape", "Flatten", "Squeeze", "Unsqueeze") or \
                view.only_reader(node.inputs[0]) is not node or not src.inputs[0]:
            continue
        node.inputs = [src.inputs[0], node.inputs[1]]
        changed = True
    return changed
