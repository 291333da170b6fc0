"""Conv + BatchNormalization, Conv + Mul and Conv + Add by per-channel constants: folded into
the Conv's weights and bias (the result is a plain Conv, so any provider can run it). Also
BatchNormalization + Mul / Add by per-channel constants (DenseNet's pre-activation blocks
after each Concat): folded into the BatchNormalization's scale and bias.

BatchNormalization(conv(x)) = s * (conv(x) - mean) + beta with s = scale / sqrt(var + eps)
                            = conv'(x) with W' = W * s (per output channel), B' = (B - mean) * s + beta.
Arithmetic in float64, stored back in the weights' dtype."""

from __future__ import annotations

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import GraphView, is_inference_batchnorm, is_op


def _channel_vector(c: np.ndarray, m: int, spatial: int) -> np.ndarray | None:
    """A constant broadcast against [N, M, *spatial] that varies only along M -> [M]."""
    if c.ndim > spatial + 2:
        return None
    full = (1,) * (spatial + 2 - c.ndim) + tuple(c.shape)
    if full[0] != 1 or any(d != 1 for d in full[2:]) or full[1] not in (1, m):
        return None
    return np.broadcast_to(c.reshape(-1).astype(np.float64), (m,))


def _conv_weights(view: GraphView, conv: ir.Node):
    if not is_op(conv, "Conv") or len(conv.inputs) < 2:
        return None
    w = view.const(conv.inputs[1])
    if w is None or w.dtype.kind != "f" or w.ndim < 3:
        return None
    b = view.const(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
    if len(conv.inputs) > 2 and conv.inputs[2] and b is None:
        return None
    return w, b


def fold_conv_batchnorm(graph: ir.Graph) -> bool:
    view = GraphView(graph)
    changed = False
    created: set[int] = set()  # chains (Conv-BN-Mul) fold one step per run of the pass
    for node in list(graph.nodes):
        if not view.alive(node) or not (is_op(node, "BatchNormalization", "Mul", "Add")):
            continue
        x = node.inputs[0]
        if node.op_type != "BatchNormalization" and len(node.inputs) == 2 and \
                not is_op(view.producer.get(x), "Conv"):
            x = node.inputs[1]  # Mul/Add are commutative: the Conv may feed either side
        conv = view.producer.get(x)
        if conv is None or id(conv) in created or not view.alive(conv) or \
                view.only_reader(x) is not node:
            continue
        got = _conv_weights(view, conv)
        if got is None:
            continue
        w, b = got
        m, spatial = w.shape[0], w.ndim - 2
        bias = np.zeros(m) if b is None else b.astype(np.float64)
        if node.op_type == "BatchNormalization":
            if not is_inference_batchnorm(node):
                continue
            consts = [view.const(i) for i in node.inputs[1:]]
            if any(c is None or c.shape != (m,) for c in consts):
                continue
            scale, beta, mean, var = (c.astype(np.float64) for c in consts)
            s = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
            new_w = w.astype(np.float64) * s.reshape((m,) + (1,) * (spatial + 1))
            new_b = (bias - mean) * s + beta
        else:
            # Mul/Add with the conv output as either operand and a per-channel constant.
            other = node.inputs[1] if node.inputs[0] == x else node.inputs[0]
            if node.inputs.count(x) != 1:
                continue
            c = view.const(other)
            vec = None if c is None or c.dtype != w.dtype else _channel_vector(c, m, spatial)
            if vec is None:
                continue
            if node.op_type == "Mul":
                new_w = w.astype(np.float64) * vec.reshape((m,) + (1,) * (spatial + 1))
                new_b = bias * vec
            else:
                new_w, new_b = w, bias + vec
        w_name = view.add_initializer(conv.inputs[1] + "_folded", new_w.astype(w.dtype))
        b_name = view.add_initializer((conv.inputs[2] if b is not None else conv.name) +
                                      "_bias_folded", new_b.astype(w.dtype))
        fused = ir.Node(op_type="Conv", inputs=[conv.inputs[0], w_name, b_name],
                        outputs=[node.outputs[0]], attrs=dict(conv.attrs), name=conv.name,
                        domain=conv.domain)
        view.replace([conv, node], [fused])
        created.add(id(fused))
        changed = True
    view.commit()
    return changed


def _bn_params(view: GraphView, bn: ir.Node):
    """(scale, bias, mean, var) of an inference BatchNormalization with constant [C] params."""
    if not is_inference_batchnorm(bn):
        return None
    consts = [view.const(i) for i in bn.inputs[1:]]
    if any(c is None or c.ndim != 1 or c.dtype.kind != "f" for c in consts) or \
            len({c.shape for c in consts}) != 1:
        return None
    return consts


def fold_batchnorm_mul_add(graph: ir.Graph) -> bool:
    """BN(x) * m + a with m, a constants varying only along the channels:
    BN'(x) with scale' = scale * m, bias' = bias * m + a (mean, var and epsilon unchanged)."""
    view = GraphView(graph)
    changed = False
    created: set[int] = set()  # chains (BN-Mul-Add) fold one step per run of the pass
    for node in list(graph.nodes):
        if not view.alive(node) or not is_op(node, "Mul", "Add") or len(node.inputs) != 2:
            continue
        bn = next((view.producer.get(i) for i in node.inputs
                   if is_op(view.producer.get(i), "BatchNormalization")), None)
        if bn is None or id(bn) in created or not view.alive(bn) or \
                node.inputs.count(bn.outputs[0]) != 1 or view.only_reader(bn.outputs[0]) is not node:
            continue
        params = _bn_params(view, bn)
        shape = view.shape(bn.outputs[0])
        if params is None or shape is None or len(shape) < 2:
            continue
        scale, bias = params[0], params[1]
        c = view.const(node.inputs[1] if node.inputs[0] == bn.outputs[0] else node.inputs[0])
        vec = None if c is None or c.dtype != scale.dtype else \
            _channel_vector(c, scale.shape[0], len(shape) - 2)
        if vec is None:
            continue
        if node.op_type == "Mul":
            new_scale = scale.astype(np.float64) * vec
            new_bias = bias.astype(np.float64) * vec
        else:
            new_scale, new_bias = scale, bias.astype(np.float64) + vec
        s_name = view.add_initializer(bn.inputs[1] + "_folded", new_scale.astype(scale.dtype))
        b_name = view.add_initializer(bn.inputs[2] + "_folded", new_bias.astype(bias.dtype))
        folded = ir.Node(op_type="BatchNormalization",
                         inputs=[bn.inputs[0], s_name, b_name, bn.inputs[3], bn.inputs[4]],
                         outputs=[node.outputs[0]], attrs=dict(bn.attrs), name=bn.name,
                         domain=bn.domain)
        view.replace([bn, node], [folded])
        created.add(id(folded))
        changed = True
    view.commit()
    return changed
