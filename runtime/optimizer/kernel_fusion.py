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
from runtime.optimizer.graph_view import GraphView, is_inference_batchnorm, is_op

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


def _activation_after_reshape(view: GraphView, out: str):
    """(Reshape, activation node, (name, params)) when ``out`` is only reshaped and the reshaped
    value only activated: an element-wise activation commutes with the Reshape, so the GEMM
    can apply it (exporters put a Reshape between a 2-D Gemm and GPT-2's GELU)."""
    rs = view.only_reader(out)
    if not is_op(rs, "Reshape") or rs.inputs[0] != out or not view.alive(rs):
        return None
    act_node, act = _follow_activation(view, rs.outputs[0])
    if act_node is None:
        return None
    return rs, act_node, act


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


def fuse_batchnorm_activation(graph: ir.Graph) -> bool:
    """Inference BatchNormalization (float32) + activation -> ferry::FusedBatchNormalization:
    one pass over the tensor instead of two (DenseNet's BN-ReLU before every convolution)."""
    view = GraphView(graph)
    changed = False
    for bn in list(graph.nodes):
        if not is_inference_batchnorm(bn) or not view.alive(bn) or \
                view.elem_type(bn.inputs[0]) != _F32:
            continue
        act_node, act = _follow_activation(view, bn.outputs[0])
        if act_node is None:
            continue
        attrs = {"epsilon": float(bn.attrs.get("epsilon", 1e-5))}
        _set_activation(attrs, act)
        fused = ir.Node("FusedBatchNormalization", list(bn.inputs), [act_node.outputs[0]],
                        attrs, bn.name or view.new_name("FusedBatchNormalization"), FERRY)
        view.replace([bn, act_node], [fused])
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
            tail: list[ir.Node] = []
            if act_node is None:
                through = _activation_after_reshape(view, out)
                if through is None:
                    continue
                rs, act_node, act = through
                # act(Reshape(Gemm)) == Reshape(act(Gemm)): the Reshape moves after the fusion.
                tail = [ir.Node("Reshape", [out, rs.inputs[1]], [act_node.outputs[0]],
                                dict(rs.attrs), rs.name, rs.domain)]
                matched = [node, rs, act_node]
                fused_out = out
            else:
                matched = [node, act_node]
                fused_out = act_node.outputs[0]
            attrs = _set_activation(dict(node.attrs), act)
            view.replace(matched, [ir.Node("FusedGemm", list(node.inputs), [fused_out], attrs,
                                           node.name or view.new_name("FusedGemm"), FERRY)]
                         + tail)
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


def _swaps_last_two(perm: list[int]) -> bool:
    n = len(perm)
    return n >= 2 and perm == list(range(n - 2)) + [n - 1, n - 2]


def fold_transposes_into_matmul(graph: ir.Graph) -> bool:
    """A Transpose that only swaps the last two axes of a GEMM operand is read by the GEMM in
    place: Gemm/FusedGemm flip transA/transB; MatMul/FusedMatMul take transB=1 (runs as
    ferry::FusedMatMul). Constant operands never reach here (constant folding transposes
    them once)."""
    view = GraphView(graph)
    changed = False
    for node in list(graph.nodes):
        gemm = is_op(node, "Gemm") or (node.domain == FERRY and node.op_type == "FusedGemm")
        mm = is_op(node, "MatMul") or (node.domain == FERRY and node.op_type == "FusedMatMul")
        if not (gemm or mm) or not view.alive(node) or len(node.inputs) < 2 or \
                view.elem_type(node.inputs[0]) != _F32:
            continue
        attrs = dict(node.attrs)
        inputs = list(node.inputs)
        folded = []
        for pos in ((0, 1) if gemm else (1,)):
            tr = view.producer.get(inputs[pos])
            if not is_op(tr, "Transpose") or view.only_reader(inputs[pos]) is not node or \
                    not view.alive(tr):
                continue
            perm = [int(p) for p in tr.attrs.get("perm", [])]
            if not perm:  # default: reverse the axes, a swap only for rank 2
                shape = view.shape(tr.inputs[0])
                perm = list(range(len(shape)))[::-1] if shape is not None else []
            key = "transA" if pos == 0 else "transB"
            if not _swaps_last_two(perm) or (gemm and len(perm) != 2) or \
                    (mm and int(attrs.get(key, 0))):
                continue
            attrs[key] = 1 - int(attrs.get(key, 0))
            inputs[pos] = tr.inputs[0]
            folded.append(tr)
        if not folded:
            continue
        if mm and node.op_type == "MatMul":
            fused = ir.Node("FusedMatMul", inputs, list(node.outputs), attrs, node.name or
                            view.new_name("FusedMatMul"), FERRY)
        else:
            fused = ir.Node(node.op_type, inputs, list(node.outputs), attrs, node.name,
                            node.domain)
        view.replace(folded + [node], [fused])
        changed = True
    view.commit()
    return changed


def fuse_reshape_gemm_reshape(graph: ir.Graph) -> bool:
    """Reshape(x, [-1, K]) -> Gemm/FusedGemm(const B, bias) -> Reshape(back to x's leading dims
    + [N]) -> ferry::FusedMatMul(x, B, bias): exporters flatten [batch, seq, K] for a 2-D Gemm
    (GPT-2's Conv1D); MatMul takes the 3-D value as it is, and both Reshapes go."""
    view = GraphView(graph)
    changed = False
    for gemm in list(graph.nodes):
        is_gemm = is_op(gemm, "Gemm") or (gemm.domain == FERRY and gemm.op_type == "FusedGemm")
        if not is_gemm or not view.alive(gemm) or len(gemm.inputs) < 2:
            continue
        attrs = gemm.attrs
        if int(attrs.get("transA", 0)) or float(attrs.get("alpha", 1.0)) != 1.0 or \
                float(attrs.get("beta", 1.0)) != 1.0:
            continue
        w = view.const(gemm.inputs[1])
        if w is None or w.ndim != 2 or w.dtype != np.float32:
            continue
        n = w.shape[0] if int(attrs.get("transB", 0)) else w.shape[1]
        bias = gemm.inputs[2] if len(gemm.inputs) > 2 and gemm.inputs[2] else ""
        c = view.const(bias) if bias else None
        if bias and (c is None or c.dtype != np.float32 or c.size != n or
                     c.shape[-1:] != (n,) or any(d != 1 for d in c.shape[:-1])):
            continue
        flat = view.producer.get(gemm.inputs[0])
        if not is_op(flat, "Reshape") or view.only_reader(gemm.inputs[0]) is not gemm or \
                not view.alive(flat):
            continue
        x = flat.inputs[0]
        back = view.only_reader(gemm.outputs[0])
        if not is_op(back, "Reshape") or back.inputs[0] != gemm.outputs[0] or \
                not view.alive(back):
            continue
        xs, ys = view.shape(x), view.shape(back.outputs[0])
        k = w.shape[1] if int(attrs.get("transB", 0)) else w.shape[0]
        if xs is None or ys is None or len(xs) < 2 or len(ys) != len(xs) or \
                None in xs or xs[-1] != k or ys[-1] != n or view.elem_type(x) != _F32:
            continue
        if tuple(ys[:-1]) != tuple(xs[:-1]):
            # Inference may lose the symbol through the 2-D Gemm: a constant target with one
            # -1 and x's static dims elsewhere still restores x's leading dims.
            t = view.const(back.inputs[1])
            lead = None if t is None or t.ndim != 1 or len(t) != len(xs) else \
                [int(e) for e in t[:-1]]
            if lead is None or lead.count(-1) != 1 or int(t[-1]) != n or \
                    any(e != -1 and e != d for e, d in zip(lead, xs[:-1])):
                continue
        new_attrs = {}
        if int(attrs.get("transB", 0)):
            new_attrs["transB"] = 1
        if gemm.domain == FERRY:
            for key in ("activation", "activation_params"):
                if key in attrs:
                    new_attrs[key] = attrs[key]
        if c is not None and c.ndim != 1:
            bias = view.add_initializer(bias + "_vec", c.reshape(n))
        fused = ir.Node("FusedMatMul", [x, gemm.inputs[1]] + ([bias] if bias else []),
                        list(back.outputs), new_attrs, gemm.name or
                        view.new_name("FusedMatMul"), FERRY)
        view.replace([flat, gemm, back], [fused])
        changed = True
    view.commit()
    return changed
