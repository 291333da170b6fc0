"""Fusions into the CPU provider's kernels (extended level): the activation, residual add and
bias a Conv/Gemm/MatMul feeds are applied by the kernel while the output tile is still in
cache, instead of by separate passes over memory.

- Conv [+ Add/Sum(residual of the same shape)] [+ activation]   -> ferry::FusedConv
- Gemm + activation                                              -> ferry::FusedGemm
- MatMul(A, const B) + Add(const bias over the last axis)        -> Gemm (2-D A) or
                                                                    ferry::FusedMatMul
- MatMul [+ bias] + activation                                   -> ferry::FusedMatMul
Only float32 values are fused (the kernels' type); others keep their nodes."""

from __future__ import annotations

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op

FERRY = "ferry"
_F32 = 1  # TensorProto.FLOAT


def activation_of(view: GraphView, node: ir.Node | None):
    """(name, params) when ``node`` is an activation a fused kernel can apply, else None."""
    if node is None:
        return None
    std = node.domain in ("", "ai.onnx")
    op = node.op_type
    if std and op in ("Relu", "Sigmoid", "Tanh", "HardSwish"):
        return {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
                "HardSwish": "hard_swish"}[op], []
    if std and op == "LeakyRelu":
        return "leaky_relu", [float(node.attrs.get("alpha", 0.01))]
    if std and op == "HardSigmoid":
        return "hard_sigmoid", [float(node.attrs.get("alpha", 0.2)),
                                float(node.attrs.get("beta", 0.5))]
    if std and op == "Clip":
        if "min" in node.attrs or "max" in node.attrs or len(node.inputs) == 1:
            lo = float(node.attrs.get("min", -3.4028234663852886e38))
            hi = float(node.attrs.get("max", 3.4028234663852886e38))
            return "clip", [lo, hi]
        bounds = []
        for k, default in ((1, -3.4028234663852886e38), (2, 3.4028234663852886e38)):
            name = node.inputs[k] if len(node.inputs) > k else ""
            if not name:
                bounds.append(default)
                continue
            c = view.const(name)
            if c is None or c.size != 1:
                return None
            bounds.append(float(c.reshape(-1)[0]))
        return "clip", bounds
    if (std or node.domain == FERRY) and op == "Gelu":
        return ("gelu_tanh" if node.attrs.get("approximate", "none") == "tanh" else "gelu"), []
    if node.domain == FERRY and op == "Silu":
        return "silu", []
    return None


def _set_activation(attrs: dict, act) -> dict:
    attrs["activation"] = act[0]
    if act[1]:  # an empty list would have no attribute type in the saved model
        attrs["activation_params"] = [float(v) for v in act[1]]
    return attrs


def _follow_activation(view: GraphView, out: str):
    """The activation reading ``out`` (its only reader), with its (name, params)."""
    nxt = view.only_reader(out)
    act = activation_of(view, nxt)
    if act is None or not view.alive(nxt) or nxt.inputs[0] != out:
        return None, None
    return nxt, act


def fuse_conv(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    for conv in list(graph.nodes):
        if not is_op(conv, "Conv") or not view.alive(conv) or \
                view.elem_type(conv.inputs[0]) != _F32:
            continue
        out = conv.outputs[0]
        matched = [conv]
        z = ""
        nxt = view.only_reader(out)
        if (is_op(nxt, "Add") or is_op(nxt, "Sum") and len(nxt.inputs) == 2) and \
                view.alive(nxt):
            other = [i for i in nxt.inputs if i != out]
            # The kernel adds Z when it has the output's exact shape; any other (broadcast)
            # shape takes FusedConv's numpy path, which broadcasts like Add. Same rank needed
            # so that the usual case (a residual) is the likely one.
            shape, zshape = view.shape(out), view.shape(other[0]) if len(other) == 1 else None
            if len(other) == 1 and shape is not None and zshape is not None and \
                    len(shape) == len(zshape) and view.elem_type(other[0]) == _F32:
                z = other[0]
                matched.append(nxt)
                out = nxt.outputs[0]
        act_node, act = _follow_activation(view, out)
        if act_node is not None:
            matched.append(act_node)
            out = act_node.outputs[0]
        if len(matched) == 1:
            continue
        inputs = list(conv.inputs) + [""] * (3 - len(conv.inputs))
        if z:
            inputs.append(z)
        attrs = dict(conv.attrs)
        if act is not None:
            _set_activation(attrs, act)
        fused = ir.Node("FusedConv", inputs[:4] if z else inputs[:3], [out], attrs,
                        conv.name or view.new_name("FusedConv"), FERRY)
        view.replace(matched, [fused])
        changed = True
    view.commit()
    return changed


def _bias_vector(view: GraphView, add: ir.Node, out: str, n: int) -> str | None:
    other = [i for i in add.inputs if i != out]
    if len(other) != 1:
        return None
    c = view.const(other[0])
    if c is None or c.dtype != np.float32 or c.size != n or c.shape[-1:] != (n,) or \
            any(d != 1 for d in c.shape[:-1]):
        return None
    if c.ndim == 1:
        return other[0]
    return view.add_initializer(other[0] + "_vec", c.reshape(n))


def fuse_gemm(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    for node in list(graph.nodes):
        if not view.alive(node) or not is_op(node, "MatMul", "Gemm") or \
                view.elem_type(node.inputs[0]) != _F32:
            continue
        out = node.outputs[0]
        matched = [node]
        if node.op_type == "Gemm":
            act_node, act = _follow_activation(view, out)
            if act_node is None:
                continue
            attrs = _set_activation(dict(node.attrs), act)
            view.replace([node, act_node], [ir.Node("FusedGemm", list(node.inputs),
                                                    [act_node.outputs[0]], attrs, node.name or
                                                    view.new_name("FusedGemm"), FERRY)])
            changed = True
            continue
        a, b = node.inputs
        bw = view.const(b)
        a_shape = view.shape(a)
        bias = ""
        nxt = view.only_reader(out)
        if bw is not None and bw.ndim == 2 and is_op(nxt, "Add") and view.alive(nxt):
            bias = _bias_vector(view, nxt, out, bw.shape[1]) or ""
            if bias:
                matched.append(nxt)
                out = nxt.outputs[0]
        act_node, act = _follow_activation(view, out)
        if act_node is not None:
            matched.append(act_node)
            out = act_node.outputs[0]
        if len(matched) == 1:
            continue
        attrs = {}
        if act is not None:
            attrs = _set_activation({}, act)
        if a_shape is not None and len(a_shape) == 2 and bw is not None:
            op = "FusedGemm" if act is not None else "Gemm"
            fused = ir.Node(op, [a, b] + ([bias] if bias else []), [out], attrs,
                            node.name or view.new_name(op), FERRY if act is not None else "")
        else:
            fused = ir.Node("FusedMatMul", [a, b] + ([bias] if bias else []), [out], attrs,
                            node.name or view.new_name("FusedMatMul"), FERRY)
        view.replace(matched, [fused])
        changed = True
    view.commit()
    return changed
