"""Constant folding: a node whose inputs are all constants is computed once, here, with the
CPU provider's reference implementation, and its outputs become initializers. Constant nodes
become initializers too.

Caps keep folding from blowing up memory or the saved file: an output is folded only when it
is at most FOLD_MAX_BYTES, and each call may grow the graph's constants by at most
FOLD_GROWTH_BYTES beyond what the folded nodes read. Ops whose output size follows from input
values (ConstantOfShape, Expand, Tile, Range, Pad, Resize, OneHot) have that size computed
before anything is allocated (providers/cpu/size_prediction.py)."""

from __future__ import annotations

import logging

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import NONDETERMINISTIC_OPS, GraphView

log = logging.getLogger("ferry")

FOLD_MAX_BYTES = 64 << 20
FOLD_GROWTH_BYTES = 256 << 20

# Ops never folded: their value is per run, folding them gains nothing, or their output size
# is not cheaply known before running them.
_NEVER_FOLD = NONDETERMINISTIC_OPS | {
    "If", "Loop", "Scan", "SequenceMap", "Optional", "CenterCropPad", "Col2Im", "STFT", "DFT",
    "MelWeightMatrix"}


def _impl(graph: ir.Graph, node: ir.Node):
    from providers.cpu import opset

    return opset.get(node.op_type, node.domain, graph.opset(node.domain))


def fold_constants(graph: ir.Graph) -> bool:
    from providers.cpu import opset
    from providers.cpu.size_prediction import predicted_output_bytes

    view = GraphView(graph)
    changed = False
    growth_left = FOLD_GROWTH_BYTES
    kept: list[ir.Node] = []
    for node in graph.nodes:
        outs = [o for o in node.outputs if o]
        foldable = (outs and node.op_type not in _NEVER_FOLD
                    and not any(True for _ in node.subgraphs())
                    and not any(o in view.protected for o in outs)
                    and all(not i or view.const(i) is not None for i in node.inputs))
        if not foldable:
            kept.append(node)
            continue
        impl = _impl(graph, node)
        if impl is None:
            kept.append(node)
            continue
        ins = [view.const(i) if i else None for i in node.inputs]
        read = sum(v.nbytes for v in ins if v is not None)
        predicted = predicted_output_bytes(node.op_type, ins, impl.attrs_with_defaults(
            node.attrs)) if node.domain in ("", "ai.onnx") else None
        if predicted is not None and (predicted > FOLD_MAX_BYTES or
                                      predicted - read > growth_left):
            kept.append(node)
            continue
        ctx = opset.OpContext(node_name=node.name, op_type=node.op_type, domain=node.domain,
                              opset=graph.opset(node.domain), num_outputs=len(node.outputs))
        try:
            values = impl.call(ins, impl.attrs_with_defaults(node.attrs), ctx)
        except Exception as exc:  # left for run time, where the error is reported with inputs
            log.debug("constant folding skipped %s: %s", node.display, exc)
            kept.append(node)
            continue
        arrays = []
        for name, v in zip(node.outputs, values):
            if not name:
                continue
            if not isinstance(v, np.ndarray) and not np.isscalar(v):
                arrays = None  # sequences, optionals: not initializers
                break
            arrays.append((name, np.asarray(v)))
        written = 0 if arrays is None else sum(v.nbytes for _, v in arrays)
        if arrays is None or written - read > growth_left or \
                any(v.nbytes > FOLD_MAX_BYTES or v.dtype == object for _, v in arrays):
            kept.append(node)
            continue
        growth_left -= max(0, written - read)
        for name, v in arrays:
            graph.initializers[name] = v
            view.input_names.discard(name)
        changed = True
    graph.nodes = kept
    return changed
