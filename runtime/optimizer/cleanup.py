"""Small no-op eliminations: Cast to the type the value already has, and Reshape chains
(Reshape/Flatten/Squeeze/Unsqueeze followed by a Reshape to a constant shape, where only the
last shape matters)."""

from __future__ import annotations

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op, rename_uses


def remove_noop_casts(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    rename: dict[str, str] = {}
    kept = []
    for node in graph.nodes:
        if is_op(node, "Cast") and node.outputs[0] not in view.protected and \
                node.inputs[0] and view.elem_type(node.inputs[0]) == node.attrs.get("to"):
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
