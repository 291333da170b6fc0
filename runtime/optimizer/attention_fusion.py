"""Self- and cross-attention as PyTorch and Hugging Face exports spell it, fused into one
``ferry::MultiHeadAttention`` (extended level, CPU first):

    q = Transpose(Reshape(q3, [b, s, H, D]), [0, 2, 1, 3])           (optionally * scalar)
    k = Transpose(Reshape(k3, [b, t, H, D]), [0, 2, 3, 1])           or [0,2,1,3] then [0,1,3,2]
                                                (or that swap done on a [B*H, T, D] view)
    v = Transpose(Reshape(v3, [b, t, H, Dv]), [0, 2, 1, 3])
    p = Softmax(MatMul(q, k) [* or / scalar] [+ mask], axis=-1)
    y = Reshape(Transpose(MatMul(p, v), [0, 2, 1, 3]), [b, s, H * Dv])

becomes ``y = Reshape(MultiHeadAttention(q3, k3, v3, mask), ...)``: no head split or merge
transposes are materialized, and the scores never leave the kernel's per-thread block. When
q3, k3 and v3 are the three outputs of one Split, or three projections (MatMul/FusedMatMul
without activation) of the same input by constant weights, the projections become one GEMM
with concatenated weights whose packed output [Q | K | V] the kernel reads in place.
Only float32 attention is fused; the mask must be a float32 additive mask of rank <= 4."""

from __future__ import annotations

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_op

FERRY = "ferry"
_F32 = 1


def _scalar(view: GraphView, name: str) -> float | None:
    c = view.const(name)
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    return float(c.reshape(-1)[0])


def _producer_if_only(view: GraphView, name: str, reader: ir.Node, *ops: str):
    """The producer of ``name`` when it is one of ``ops`` and ``reader`` is its only reader."""
    node = view.producer.get(name)
    if not is_op(node, *ops) or view.only_reader(name) is not reader or not view.alive(node):
        return None
    return node


def _strip_scales(view: GraphView, name: str, reader: ir.Node, matched: list):
    """Walks back over Mul/Div by scalar constants feeding ``reader``:
    (input, product of the scales, the node that reads that input)."""
    scale = 1.0
    while True:
        node = _producer_if_only(view, name, reader, "Mul", "Div")
        if node is None or len(node.inputs) != 2:
            return name, scale, reader
        if node.op_type == "Div":
            c = _scalar(view, node.inputs[1])
            if c is None or c == 0.0:
                return name, scale, reader
            scale /= c
            nxt = node.inputs[0]
        else:
            c0, c1 = _scalar(view, node.inputs[0]), _scalar(view, node.inputs[1])
            if c1 is not None:
                scale, nxt = scale * c1, node.inputs[0]
            elif c0 is not None:
                scale, nxt = scale * c0, node.inputs[1]
            else:
                return name, scale, reader
        matched.append(node)
        name, reader = nxt, node


def _perm(node: ir.Node) -> list[int]:
    return [int(p) for p in node.attrs.get("perm", [])]


def _split_heads(view: GraphView, name: str, reader: ir.Node, matched: list,
                 keep: bool = False):
    """``name`` = Reshape(x3, [b, s, H, D]) read only by ``reader``: (x3, H, D). The target is
    a constant, or computed (the dynamo exporter's Concat of Shape slices) when shape
    inference shows it keeps x3's first two dimensions. ``keep``: others read ``name`` too,
    so the Reshape stays (dead-code removal takes it once they are gone)."""
    if keep:
        rs = view.producer.get(name)
        rs = rs if is_op(rs, "Reshape") and view.alive(rs) else None
    else:
        rs = _producer_if_only(view, name, reader, "Reshape")
    if rs is None or len(rs.inputs) != 2:
        return None
    x3 = rs.inputs[0]
    shape = view.shape(x3)
    if shape is None or len(shape) != 3 or view.elem_type(x3) != _F32 or \
            not isinstance(shape[2], int) or shape[2] <= 0:
        return None
    allowzero = int(rs.attrs.get("allowzero", 0))
    target = view.const(rs.inputs[1])
    if target is None:
        out = view.shape(rs.outputs[0])
        if out is None or len(out) != 4 or out[0] is None or out[1] is None or \
                (out[0], out[1]) != (shape[0], shape[1]) or \
                not all(isinstance(e, int) and e > 0 for e in out[2:]):
            return None
        h, d = out[2], out[3]
    else:
        if target.shape != (4,):
            return None
        t = [int(v) for v in target]
        if t.count(-1) > 1 or (allowzero and 0 in t):
            return None
        h, d = t[2], t[3]
        if h == -1 and d > 0 and shape[2] % d == 0:
            h = shape[2] // d
        elif d == -1 and h > 0 and shape[2] % h == 0:
            d = shape[2] // h
        for j in (0, 1):  # 0 copies the dim, -1 is inferred; a literal must equal a static dim
            if t[j] < -1 or (t[j] > 0 and shape[j] != t[j]):
                return None
    if h <= 0 or d <= 0 or shape[2] != h * d:
        return None
    if not keep:
        matched.append(rs)
    return x3, h, d


def _query(view, name, mm, matched):
    name, scale, reader = _strip_scales(view, name, mm, matched)
    tr = _producer_if_only(view, name, reader, "Transpose")
    if tr is None or _perm(tr) != [0, 2, 1, 3]:
        return None
    matched.append(tr)
    got = _split_heads(view, tr.inputs[0], tr, matched)
    return None if got is None else (*got, scale)


def _swap_through_3d(view: GraphView, name: str, reader: ir.Node, matched: list):
    """Reshape([B,H,T,D] -> [B*H,T,D]) -> Transpose(0,2,1) -> Reshape(-> [B,H,D,T]), the
    dynamo exporter's K^T inside scaled_dot_product_attention: the 4-D input, or None."""
    r2 = _producer_if_only(view, name, reader, "Reshape")
    tr = _producer_if_only(view, r2.inputs[0], r2, "Transpose") if r2 is not None else None
    if tr is None or _perm(tr) != [0, 2, 1]:
        return None
    r1 = _producer_if_only(view, tr.inputs[0], tr, "Reshape")
    if r1 is None:
        return None
    src, mid, out = view.shape(r1.inputs[0]), view.shape(r1.outputs[0]), view.shape(name)
    if src is None or mid is None or out is None or len(src) != 4 or len(mid) != 3 or \
            len(out) != 4 or None in src or None in out or None in mid[1:]:
        return None
    if tuple(mid[1:]) != tuple(src[2:]) or tuple(out) != (src[0], src[1], src[3], src[2]):
        return None
    matched += [r2, tr, r1]
    return r1.inputs[0]


def _key(view, name, mm, matched):
    name, scale, reader = _strip_scales(view, name, mm, matched)
    tr = _producer_if_only(view, name, reader, "Transpose")
    inner = None
    if tr is not None and _perm(tr) == [0, 1, 3, 2]:
        matched.append(tr)
        inner, reader = tr.inputs[0], tr
    elif tr is None:
        inner = _swap_through_3d(view, name, reader, matched)
        reader = matched[-1] if inner is not None else reader
    if inner is not None:  # K^T of an already head-split K
        inner, s2, reader = _strip_scales(view, inner, reader, matched)
        scale *= s2
        tr2 = view.producer.get(inner)
        if not is_op(tr2, "Transpose") or _perm(tr2) != [0, 2, 1, 3] or not view.alive(tr2):
            return None
        # The dynamo exporter also reads the head-split K's Shape (for the 3-D view's
        # target): then the split stays for those readers until dead-code removal.
        keep = view.only_reader(inner) is not reader
        if not keep:
            matched.append(tr2)
        got = _split_heads(view, tr2.inputs[0], tr2, matched, keep=keep)
    elif tr is not None and _perm(tr) == [0, 2, 3, 1]:
        matched.append(tr)
        got = _split_heads(view, tr.inputs[0], tr, matched)
    else:
        return None
    return None if got is None else (*got, scale)


def _leads_to_scores(view: GraphView, name: str, reader: ir.Node) -> bool:
    """Whether ``name`` is MatMul output, possibly scaled by scalar constants."""
    name, _, reader = _strip_scales(view, name, reader, [])
    return _producer_if_only(view, name, reader, "MatMul") is not None


def _match(view: GraphView, sm: ir.Node, opset: int):
    """The attention ending in Softmax ``sm``: a dict describing it, or None."""
    x = sm.inputs[0]
    xs = view.shape(x)
    if xs is None or len(xs) != 4 or view.elem_type(x) != _F32:
        return None
    axis = int(sm.attrs.get("axis", -1 if opset >= 13 else 1))
    if axis not in (-1, 3):
        return None
    matched: list[ir.Node] = [sm]
    mask = ""
    scores = x
    add = _producer_if_only(view, x, sm, "Add")
    reader = sm
    if add is not None and len(add.inputs) == 2:
        for j in (0, 1):
            other = add.inputs[1 - j]
            ms = view.shape(other)
            if _leads_to_scores(view, add.inputs[j], add) and ms is not None and \
                    len(ms) <= 4 and view.elem_type(other) == _F32:
                mask, scores, reader = other, add.inputs[j], add
                matched.append(add)
                break
        else:
            return None
    scores, scale, reader = _strip_scales(view, scores, reader, matched)
    mm = _producer_if_only(view, scores, reader, "MatMul")
    if mm is None:
        return None
    matched.append(mm)
    q = _query(view, mm.inputs[0], mm, matched)
    k = _key(view, mm.inputs[1], mm, matched) if q is not None else None
    if q is None or k is None:
        return None
    q3, hq, dq, sq = q
    k3, hk, dk, sk = k
    # The weighted sum and the head merge.
    mm2 = view.only_reader(sm.outputs[0])
    if not is_op(mm2, "MatMul") or mm2.inputs[0] != sm.outputs[0] or not view.alive(mm2):
        return None
    matched.append(mm2)
    vt = _producer_if_only(view, mm2.inputs[1], mm2, "Transpose")
    if vt is None or _perm(vt) != [0, 2, 1, 3]:
        return None
    matched.append(vt)
    v = _split_heads(view, vt.inputs[0], vt, matched)
    if v is None:
        return None
    v3, hv, dv = v
    if not hq == hk == hv or dq != dk:
        return None
    merge = view.only_reader(mm2.outputs[0])
    if not is_op(merge, "Transpose") or _perm(merge) != [0, 2, 1, 3] or not view.alive(merge):
        return None
    matched.append(merge)
    out_rs = view.only_reader(merge.outputs[0])
    if not is_op(out_rs, "Reshape") or out_rs.inputs[0] != merge.outputs[0] or \
            not view.alive(out_rs):
        return None
    # The merge Reshape is kept, reading the kernel's [b, s, H*Dv] output: the same elements
    # in the same order as the transposed [b, s, H, Dv], so its target still applies, unless
    # (allowzero = 0) a constant 0 past the first two entries would copy another dimension.
    target = view.const(out_rs.inputs[1])
    if target is not None and not int(out_rs.attrs.get("allowzero", 0)) and \
            any(int(e) == 0 for e in target.reshape(-1)[2:]):
        return None
    matched.append(out_rs)
    if any(not view.alive(n) for n in matched) or len({id(n) for n in matched}) != len(matched):
        return None
    return {"matched": matched, "q3": q3, "k3": k3, "v3": v3, "mask": mask, "heads": hq,
            "head_size": dq, "v_head_size": dv, "scale": scale * sq * sk, "reshape": out_rs}


def _packed_by_split(view: GraphView, q3: str, k3: str, v3: str, removed: set[int]):
    """(split node, packed input, sizes) when q3, k3, v3 are the outputs of one Split along the
    last axis of a rank-3 value, read only by the attention."""
    sp = view.producer.get(q3)
    if not is_op(sp, "Split") or list(sp.outputs) != [q3, k3, v3] or not view.alive(sp):
        return None
    src = sp.inputs[0]
    shape = view.shape(src)
    if shape is None or len(shape) != 3 or int(sp.attrs.get("axis", 0)) not in (-1, 2):
        return None
    sizes = []
    for o in sp.outputs:
        s = view.shape(o)
        if s is None or len(s) != 3 or not isinstance(s[2], int):
            return None
        sizes.append(s[2])
    if not isinstance(shape[2], int) or sum(sizes) != shape[2]:
        return None
    if any(o in view.protected or len(view.readers.get(o, [])) != 1 or
           id(view.readers[o][0]) not in removed for o in sp.outputs):
        return None
    return sp, src, sizes


def _projection(view: GraphView, name: str, removed: set[int]):
    """(node, A, W, bias or None) when ``name`` = A @ W (+ bias) with constant 2-D W and no
    activation, read only by the attention's Reshape (one of the ``removed`` nodes)."""
    node = view.producer.get(name)
    readers = view.readers.get(name, [])
    if node is None or not view.alive(node) or len(readers) != 1 or \
            id(readers[0]) not in removed or name in view.protected:
        return None
    if is_op(node, "MatMul"):
        bias = None
    elif node.domain == FERRY and node.op_type == "FusedMatMul" and \
            node.attrs.get("activation", "none") in ("", "none") and \
            not int(node.attrs.get("transB", 0)):
        bias = view.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if len(node.inputs) > 2 and node.inputs[2] and bias is None:
            return None
    else:
        return None
    w = view.const(node.inputs[1])
    if w is None or w.ndim != 2 or w.dtype != np.float32:
        return None
    return node, node.inputs[0], w, bias


def _pack_projections(view: GraphView, q3: str, k3: str, v3: str, removed: set[int]):
    """One FusedMatMul computing [Q | K | V] from three projections of the same input."""
    projs = [_projection(view, n, removed) for n in (q3, k3, v3)]
    if any(p is None for p in projs):
        return None
    a = projs[0][1]
    if any(p[1] != a for p in projs) or len({p[2].shape[0] for p in projs}) != 1 or \
            len({p[0].name for p in projs}) != 3:
        return None
    if len({p[3] is None for p in projs}) != 1:
        return None
    w = np.concatenate([p[2] for p in projs], axis=1)
    inputs = [a, view.add_initializer(projs[0][0].name + "_qkv_weight", w)]
    if projs[0][3] is not None:
        biases = [np.broadcast_to(p[3], (p[2].shape[1],)).astype(np.float32) for p in projs]
        inputs.append(view.add_initializer(projs[0][0].name + "_qkv_bias",
                                           np.concatenate(biases)))
    out = view.new_name(q3 + "_qkv")
    node = ir.Node("FusedMatMul", inputs, [out], {}, view.new_name("QKVProjection"), FERRY)
    return [p[0] for p in projs], node, out, [p[2].shape[1] for p in projs]


def fuse_attention(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    opset = graph.opset("")
    changed = False
    for sm in list(graph.nodes):
        if not is_op(sm, "Softmax") or not view.alive(sm):
            continue
        m = _match(view, sm, opset)
        if m is None:
            continue
        matched = list(m["matched"])
        new_nodes: list[ir.Node] = []
        q3, k3, v3 = m["q3"], m["k3"], m["v3"]
        attrs = {"num_heads": m["heads"], "scale": float(m["scale"])}
        inputs = [q3, k3, v3]
        removed = {id(n) for n in matched}
        by_split = _packed_by_split(view, q3, k3, v3, removed)
        if by_split is not None:
            sp, src, sizes = by_split
            matched.append(sp)
            inputs = [src, "", ""]
            attrs["qkv_hidden_sizes"] = sizes
        elif len({q3, k3, v3}) == 3:
            packed = _pack_projections(view, q3, k3, v3, removed)
            if packed is not None:
                projs, node, out, sizes = packed
                matched.extend(projs)
                new_nodes.append(node)
                inputs = [out, "", ""]
                attrs["qkv_hidden_sizes"] = sizes
        if m["mask"]:
            inputs.append(m["mask"])
        rs = m["reshape"]
        attn_out = view.new_name(rs.outputs[0] + "_attention")
        # Its shape, so that shape folding can see the merge Reshape below is a no-op.
        q_shape = view.shape(q3)
        if q_shape is not None and len(q_shape) == 3:
            graph.value_info[attn_out] = ir.ValueInfo(
                attn_out, _F32, (q_shape[0], q_shape[1], m["heads"] * m["v_head_size"]))
        new_nodes.append(ir.Node("MultiHeadAttention", inputs, [attn_out], attrs,
                                 view.new_name("MultiHeadAttention"), FERRY))
        # The merge Reshape stays (now [b, s, H*Dv] -> the same shape: a view).
        new_nodes.append(ir.Node("Reshape", [attn_out, rs.inputs[1]], list(rs.outputs),
                                 dict(rs.attrs), rs.name, rs.domain))
        view.replace(matched, new_nodes)
        changed = True
    view.commit()
    return changed
