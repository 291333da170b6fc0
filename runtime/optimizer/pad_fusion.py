"""Pad + Conv: a zero constant Pad on the spatial axes only, read by a Conv alone, becomes the
Conv's own ``pads`` (a convolution pads with zeros). Exporters emit the separate Pad for
TensorFlow-style "same" padding (EfficientNet, for instance)."""

from __future__ import annotations

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op


def _pad_amounts(view: GraphView, pad: ir.Node, rank: int) -> list[int] | None:
    """Begin and end pads per axis (2*rank ints) of a constant-zero Pad, else None."""
    if pad.attrs.get("mode", "constant") not in ("constant", b"constant"):
        return None
    if len(pad.inputs) > 1 and pad.inputs[1]:  # opset >= 11: pads (and value, axes) inputs
        p = view.const(pad.inputs[1])
        if p is None:
            return None
        pads = [int(v) for v in p.reshape(-1)]
        value = view.const(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] else None
        if len(pad.inputs) > 2 and pad.inputs[2] and value is None:
            return None
        if value is not None and value.size and float(value.reshape(-1)[0]) != 0.0:
            return None
        if len(pad.inputs) > 3 and pad.inputs[3]:
            axes_c = view.const(pad.inputs[3])
            if axes_c is None:
                return None
            axes = [int(a) % rank for a in axes_c.reshape(-1)]
            full = [0] * (2 * rank)
            for j, a in enumerate(axes):
                full[a], full[rank + a] = pads[j], pads[len(axes) + j]
            pads = full
    else:
        pads = [int(v) for v in pad.attrs.get("pads", [])]
        if float(pad.attrs.get("value", 0.0)) != 0.0:
            return None
    if len(pads) != 2 * rank or any(v < 0 for v in pads):
        return None
    return pads


def fuse_pad_into_conv(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    for pad in list(graph.nodes):
        if not is_op(pad, "Pad") or not view.alive(pad):
            continue
        conv = view.only_reader(pad.outputs[0])
        auto_pad = conv.attrs.get("auto_pad", "NOTSET") if conv is not None else ""
        if isinstance(auto_pad, bytes):
            auto_pad = auto_pad.decode()
        if not is_op(conv, "Conv") or conv.inputs[0] != pad.outputs[0] or \
                auto_pad not in ("NOTSET", "VALID"):  # VALID: no padding of its own
            continue
        shape = view.shape(pad.inputs[0])
        w = view.const(conv.inputs[1]) if len(conv.inputs) > 1 else None
        rank = len(shape) if shape is not None else (w.ndim if w is not None else None)
        if rank is None or rank < 3:
            continue
        pads = _pad_amounts(view, pad, rank)
        if pads is None or pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
            continue  # batch or channel padding is not a convolution's
        nd = rank - 2
        own = list(conv.attrs.get("pads") or [0] * (2 * nd)) if auto_pad == "NOTSET" \
            else [0] * (2 * nd)
        new = [own[i] + pads[2 + i] for i in range(nd)] + \
              [own[nd + i] + pads[rank + 2 + i] for i in range(nd)]
        fused = ir.Node("Conv", [pad.inputs[0]] + list(conv.inputs[1:]), list(conv.outputs),
                        {**conv.attrs, "pads": new, "auto_pad": "NOTSET"}, conv.name,
                        conv.domain)
        view.replace([pad, conv], [fused])
        changed = True
    view.commit()
    return changed
