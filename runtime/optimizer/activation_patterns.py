"""Activations exporters spell out as several nodes, recognised and replaced by one op:

- SiLU:  x * Sigmoid(x)                                   -> ferry::Silu
- GELU:  x * 0.5 * (1 + Erf(x / sqrt 2)) in its usual associations -> Gelu (ferry::Gelu
         before opset 20)
- GELU (tanh): 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) -> Gelu(approximate=
         "tanh") (ferry::Gelu before opset 20)
- HardSwish: x * HardSigmoid(x, alpha=1/6, beta=0.5)      -> HardSwish (opset >= 14)
"""

from __future__ import annotations

import math

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op

FERRY = "ferry"


def _scalar(view: GraphView, name: str) -> float | None:
    c = view.const(name)
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    return float(c.reshape(-1)[0])


def _other(node: ir.Node, name: str) -> str | None:
    if len(node.inputs) != 2 or node.inputs.count(name) != 1:
        return None
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def _close(v: float | None, target: float, tol: float = 1e-4) -> bool:
    return v is not None and abs(v - target) <= tol * abs(target)


def fuse_silu(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    for sig in list(graph.nodes):
        if not is_op(sig, "Sigmoid") or not view.alive(sig):
            continue
        x = sig.inputs[0]
        mul = view.only_reader(sig.outputs[0])
        if not is_op(mul, "Mul") or _other(mul, sig.outputs[0]) != x or not view.alive(mul):
            continue
        silu = ir.Node("Silu", [x], [mul.outputs[0]], {}, view.new_name("Silu"), FERRY)
        view.replace([sig, mul], [silu])
        changed = True
    view.commit()
    return changed


def fuse_hard_swish(graph: ir.Graph) -> bool:
    if graph.opset("") < 14:
        return False
    view = GraphView(graph)
    changed = False
    for hs in list(graph.nodes):
        if not is_op(hs, "HardSigmoid") or not view.alive(hs) or \
                not _close(float(hs.attrs.get("alpha", 0.2)), 1 / 6) or \
                not _close(float(hs.attrs.get("beta", 0.5)), 0.5):
            continue
        x = hs.inputs[0]
        mul = view.only_reader(hs.outputs[0])
        if not is_op(mul, "Mul") or _other(mul, hs.outputs[0]) != x or not view.alive(mul):
            continue
        view.replace([hs, mul], [ir.Node("HardSwish", [x], [mul.outputs[0]], {},
                                         view.new_name("HardSwish"), "")])
        changed = True
    view.commit()
    return changed


def fuse_gelu(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    domain = "" if graph.opset("") >= 20 else FERRY
    for erf in list(graph.nodes):
        if not is_op(erf, "Erf") or not view.alive(erf):
            continue
        scale = view.producer.get(erf.inputs[0])
        if is_op(scale, "Div") and _close(_scalar(view, scale.inputs[1]), math.sqrt(2.0)):
            x = scale.inputs[0]
        elif is_op(scale, "Mul") and len(scale.inputs) == 2:
            x = next((i for i in scale.inputs
                      if _close(_scalar(view, _other(scale, i) or ""), 1 / math.sqrt(2.0))),
                     None)
        else:
            continue
        if x is None or view.only_reader(scale.outputs[0]) is not erf:
            continue
        add = view.only_reader(erf.outputs[0])
        if not is_op(add, "Add") or not _close(_scalar(view, _other(add, erf.outputs[0]) or ""),
                                               1.0):
            continue
        matched = [scale, erf, add]
        out = _gelu_tail(view, add.outputs[0], x, matched)
        if out is None:
            continue
        if not all(view.alive(n) for n in matched):
            continue
        view.replace(matched, [ir.Node("Gelu", [x], [out], {}, view.new_name("Gelu"), domain)])
        changed = True
    view.commit()
    return changed


def _gelu_tail(view: GraphView, t: str, x: str, matched: list) -> str | None:
    """The ``x * 0.5 * t`` that ends both GELU forms (t = 1 + erf(..) or 1 + tanh(..)), in
    its usual associations; appends its nodes to ``matched`` and returns the result's name."""
    m1 = view.only_reader(t)
    if not is_op(m1, "Mul"):
        return None
    a = _other(m1, t)
    half = view.producer.get(a) if a else None
    matched.append(m1)
    if a == x:  # (x * t) * 0.5
        m2 = view.only_reader(m1.outputs[0])
        if not is_op(m2, "Mul") or not _close(_scalar(view, _other(m2, m1.outputs[0]) or ""),
                                              0.5):
            return None
        matched.append(m2)
        return m2.outputs[0]
    if _close(_scalar(view, a or ""), 0.5):  # x * (t * 0.5)
        m2 = view.only_reader(m1.outputs[0])
        if not is_op(m2, "Mul") or _other(m2, m1.outputs[0]) != x:
            return None
        matched.append(m2)
        return m2.outputs[0]
    if is_op(half, "Mul") and view.only_reader(a) is m1 and \
            _other(half, x) is not None and _close(_scalar(view, _other(half, x)), 0.5):
        matched.append(half)  # (x * 0.5) * t
        return m1.outputs[0]
    return None


def fuse_gelu_tanh(graph: ir.Graph) -> bool:
    """0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) (GPT-2's "new GELU") ->
    Gelu(approximate="tanh") (ferry::Gelu before opset 20)."""
    view = GraphView(graph)
    changed = False
    domain = "" if graph.opset("") >= 20 else FERRY
    for th in list(graph.nodes):
        if not is_op(th, "Tanh") or not view.alive(th):
            continue
        inner = view.producer.get(th.inputs[0])
        if not is_op(inner, "Mul") or view.only_reader(th.inputs[0]) is not th:
            continue
        a = next((i for i in inner.inputs
                  if _close(_scalar(view, _other(inner, i) or ""), math.sqrt(2 / math.pi))), None)
        poly = view.producer.get(a) if a else None
        if not is_op(poly, "Add") or view.only_reader(a) is not inner:
            continue
        matched = [inner, poly]
        x = None
        for cand in poly.inputs:  # x + 0.044715 * cube(x)
            cube_scaled = _other(poly, cand)
            sc = view.producer.get(cube_scaled) if cube_scaled else None
            if not is_op(sc, "Mul") or view.only_reader(cube_scaled) is not poly:
                continue
            cube = next((i for i in sc.inputs
                         if _close(_scalar(view, _other(sc, i) or ""), 0.044715)), None)
            cn = view.producer.get(cube) if cube else None
            if cn is None or view.only_reader(cube) is not sc:
                continue
            if is_op(cn, "Pow") and cn.inputs[0] == cand and \
                    _close(_scalar(view, cn.inputs[1]), 3.0):
                matched += [sc, cn]
            elif is_op(cn, "Mul") and cand in cn.inputs:
                sq = view.producer.get(_other(cn, cand) or "")
                if not is_op(sq, "Mul") or sq.inputs != [cand, cand] or \
                        view.only_reader(sq.outputs[0]) is not cn:
                    continue
                matched += [sc, cn, sq]
            else:
                continue
            x = cand
            break
        if x is None:
            continue
        one = view.only_reader(th.outputs[0])
        if not is_op(one, "Add") or not _close(_scalar(view, _other(one, th.outputs[0]) or ""),
                                               1.0):
            continue
        matched += [th, one]
        out = _gelu_tail(view, one.outputs[0], x, matched)
        if out is None or not all(view.alive(n) for n in matched) or \
                len({id(n) for n in matched}) != len(matched):
            continue
        view.replace(matched, [ir.Node("Gelu", [x], [out], {"approximate": "tanh"},
                                       view.new_name("Gelu"), domain)])
        changed = True
    view.commit()
    return changed


def fuse_layer_norm(graph: ir.Graph) -> bool:
    """ReduceMean → Sub → Pow(2)/Mul → ReduceMean → Add(eps) → Sqrt → Div → Mul(γ) → Add(β)."""
    view = GraphView(graph)
    changed = False
    domain = "" if graph.opset("") >= 17 else FERRY

    def axes_of(node):
        if len(node.inputs) > 1 and node.inputs[1]:
            c = view.const(node.inputs[1])
            return None if c is None else [int(v) for v in np.atleast_1d(c)]
        return node.attrs.get("axes")

    for mean in list(graph.nodes):
        if not is_op(mean, "ReduceMean") or not view.alive(mean) or \
                int(mean.attrs.get("keepdims", 1)) != 1:
            continue
        x = mean.inputs[0]
        shape = view.shape(x)
        axes = axes_of(mean)
        if shape is None or axes is None or len(axes) != 1 or \
                axes[0] not in (-1, len(shape) - 1) or view.elem_type(x) != 1:
            continue
        sub = view.only_reader(mean.outputs[0])
        if not is_op(sub, "Sub") or sub.inputs != [x, mean.outputs[0]]:
            continue
        d = sub.outputs[0]
        readers = view.readers.get(d, [])
        if d in view.protected or len(readers) != 2:
            continue
        sq = next((r for r in readers if is_op(r, "Pow", "Mul")), None)
        div = next((r for r in readers if is_op(r, "Div")), None)
        if sq is None or div is None or div.inputs[0] != d:
            continue
        if sq.op_type == "Pow" and (sq.inputs[0] != d or
                                    not _close(_scalar(view, sq.inputs[1]), 2.0)):
            continue
        if sq.op_type == "Mul" and sq.inputs != [d, d]:
            continue
        var = view.only_reader(sq.outputs[0])
        if not is_op(var, "ReduceMean") or axes_of(var) != axes or \
                int(var.attrs.get("keepdims", 1)) != 1:
            continue
        add_eps = view.only_reader(var.outputs[0])
        eps = _scalar(view, _other(add_eps, var.outputs[0]) or "") if is_op(add_eps, "Add") \
            else None
        if eps is None:
            continue
        sqrt = view.only_reader(add_eps.outputs[0])
        if not is_op(sqrt, "Sqrt") or view.only_reader(sqrt.outputs[0]) is not div or \
                div.inputs[1] != sqrt.outputs[0]:
            continue
        mul = view.only_reader(div.outputs[0])
        gamma = _other(mul, div.outputs[0]) if is_op(mul, "Mul") else None
        g = view.const(gamma) if gamma else None
        if g is None or g.ndim != 1 or g.dtype != np.float32:
            continue
        matched = [mean, sub, sq, var, add_eps, sqrt, div, mul]
        out, beta = mul.outputs[0], None
        add_b = view.only_reader(out)
        if is_op(add_b, "Add"):
            bname = _other(add_b, out)
            bv = view.const(bname) if bname else None
            if bv is not None and bv.shape == g.shape and bv.dtype == g.dtype:
                matched.append(add_b)
                out, beta = add_b.outputs[0], bname
        if not all(view.alive(n) for n in matched):
            continue
        ln = ir.Node("LayerNormalization", [x, gamma] + ([beta] if beta else []), [out],
                     {"axis": -1, "epsilon": float(eps)}, view.new_name("LayerNorm"), domain)
        view.replace(matched, [ln])
        changed = True
    view.commit()
    return changed
