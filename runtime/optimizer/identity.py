"""Identity elimination: Identity nodes (and Dropout in inference with no mask asked for)
are removed and their readers read the input directly, unless the output is a graph output."""

from __future__ import annotations

from runtime import ir


def _is_noop(node: ir.Node, read: set[str]) -> bool:
    if node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "Identity":
        return True
    if node.op_type == "Dropout":
        # Dropout is a no-op in inference unless training_mode is given or the mask is read
        # (opset-9 exports name the mask output even when nothing reads it).
        wants_mask = len(node.outputs) > 1 and bool(node.outputs[1]) and node.outputs[1] in read
        has_training_input = len(node.inputs) > 2 and bool(node.inputs[2])
        return not wants_mask and not has_training_input
    return False


def remove_identities(graph: ir.Graph) -> bool:
    outputs = set(graph.output_names)
    # Values read by nested graphs keep their names (subgraphs refer to them by name).
    for node in graph.nodes:
        for sub in node.subgraphs():
            outputs |= sub.outer_references()
    read = set(outputs)
    for node in graph.nodes:
        read.update(i for i in node.inputs if i)
    rename: dict[str, str] = {}
    kept = []
    for node in graph.nodes:
        if _is_noop(node, read) and node.outputs[0] not in outputs and node.inputs and node.inputs[0]:
            src = node.inputs[0]
            rename[node.outputs[0]] = rename.get(src, src)
            continue
        kept.append(node)
    if not rename:
        return False

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in kept:
        node.inputs = [resolve(i) if i else i for i in node.inputs]
    graph.nodes = kept
    return True
