"""Dead-code elimination: nodes whose outputs nobody reads, and unused initializers."""

from __future__ import annotations

from runtime import ir

# Ops kept even when unused: they have effects beyond their outputs (none in inference ONNX
# today; listed here so adding one is a one-line change).
_SIDE_EFFECT_OPS: set[str] = set()


def remove_dead_code(graph: ir.Graph) -> bool:
    needed = set(graph.output_names)
    kept: list[ir.Node] = []
    for node in reversed(ir.topological_sort(graph)):
        if node.op_type in _SIDE_EFFECT_OPS or any(o in needed for o in node.outputs if o):
            kept.append(node)
            needed.update(ir.node_all_inputs(node))
    kept.reverse()
    changed = len(kept) != len(graph.nodes)
    graph.nodes = kept
    input_names = set(graph.input_names)
    for name in list(graph.initializers):
        if name not in needed and name not in input_names:
            del graph.initializers[name]
            changed = True
    return changed
