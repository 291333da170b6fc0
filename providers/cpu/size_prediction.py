"""Output sizes of the ops whose output can be much larger than their inputs, computed before
the op runs so a hostile or mistaken model is refused before anything is allocated
("allocation bombs"): sizes set by input values (ConstantOfShape, Expand, Tile, Range, Pad,
Resize, Upsample, OneHot), by broadcasting (elementwise ops, Where, MatMul, Einsum) or by
attributes (ConvTranspose strides/output_shape)."""

from __future__ import annotations

import math

import numpy as np

_HUGE = 1 << 62


def _prod(values) -> float:
    out = 1.0
    for v in values:
        out *= max(float(v), 0.0)
    return out


def predicted_output_bytes(op_type: str, ins: list, attrs: dict) -> int | None:
    """Bytes the op's (largest) output will take, or None when its size does not depend on
    input values. Malformed inputs give a huge number only if they would; errors in the op's
    own checks are left to the op."""
    try:
        return _predict(op_type, ins, attrs)
    except (ValueError, TypeError, OverflowError, ZeroDivisionError, IndexError):
        return None


def _item(x) -> int:
    return 8 if x is None else max(int(np.dtype(x.dtype).itemsize), 1)


_BROADCASTING = {
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "BitShift", "Equal", "Less",
    "LessOrEqual", "Greater", "GreaterOrEqual", "Where", "Max", "Min", "Sum", "Mean", "PRelu",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor"}


def _shape(v) -> tuple:
    return tuple(np.shape(v))


def _predict(op: str, ins: list, attrs: dict) -> int | None:
    arrays = [v for v in ins if isinstance(v, np.ndarray)]
    if op in _BROADCASTING and len(arrays) >= 2:
        out = np.broadcast_shapes(*(_shape(v) for v in arrays))
        return int(min(_prod(out) * max(_item(v) for v in arrays), _HUGE))
    if op in ("MatMul", "MatMulInteger") and len(arrays) >= 2:
        a, b = _shape(arrays[0]), _shape(arrays[1])
        if len(a) < 1 or len(b) < 1:
            return None
        m = a[-2] if len(a) >= 2 else 1
        n = b[-1] if len(b) >= 2 else 1
        batch = np.broadcast_shapes(a[:-2], b[:-2])
        return int(min(_prod(batch) * m * n * max(_item(arrays[0]), 4), _HUGE))
    if op == "Einsum" and arrays:
        eq = str(attrs.get("equation", "")).replace(" ", "")
        if "..." in eq:
            return None
        lhs, _, rhs = eq.partition("->")
        terms = lhs.split(",")
        sizes: dict[str, int] = {}
        for term, v in zip(terms, arrays):
            for letter, d in zip(term, _shape(v)):
                sizes[letter] = max(sizes.get(letter, 1), int(d))
        if not rhs and "->" not in eq:
            rhs = "".join(sorted(c for c in sizes if lhs.count(c) == 1))
        return int(min(_prod(sizes.get(c, 1) for c in rhs) * max(_item(v) for v in arrays),
                       _HUGE))
    if op == "ConvTranspose" and len(arrays) >= 2:
        x, w = arrays[0], arrays[1]
        nd = x.ndim - 2
        if nd < 1:
            return None
        group = int(attrs.get("group", 1) or 1)
        channels = w.shape[1] * group
        out_shape = attrs.get("output_shape")
        if out_shape:
            spatial = [int(d) for d in out_shape][-nd:]
        else:
            strides = list(attrs.get("strides") or [1] * nd)
            dil = list(attrs.get("dilations") or [1] * nd)
            pads = list(attrs.get("pads") or [0] * (2 * nd))
            opad = list(attrs.get("output_padding") or [0] * nd)
            spatial = [strides[i] * (x.shape[2 + i] - 1) + opad[i] +
                       (w.shape[2 + i] - 1) * dil[i] + 1 - pads[i] - pads[nd + i]
                       for i in range(nd)]
        return int(min(_prod([x.shape[0], channels, *spatial]) * _item(x), _HUGE))
    if op == "ConstantOfShape":
        value = attrs.get("value")
        size = 4 if value is None else _item(np.asarray(value))
        return int(min(_prod(np.asarray(ins[0]).reshape(-1)) * size, _HUGE))
    if op == "Expand":
        x, shape = ins[0], [int(d) for d in np.asarray(ins[1]).reshape(-1)]
        rank = max(x.ndim, len(shape))
        xs = (1,) * (rank - x.ndim) + tuple(x.shape)
        ss = (1,) * (rank - len(shape)) + tuple(shape)
        return int(min(_prod(max(a, b) for a, b in zip(xs, ss)) * _item(x), _HUGE))
    if op == "Tile":
        x, reps = ins[0], np.asarray(ins[1]).reshape(-1)
        return int(min(x.size * _prod(reps) * _item(x), _HUGE))
    if op == "Range":
        start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in ins[:3])
        if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
            return None
        return int(min(max(math.ceil((limit - start) / delta), 0) * _item(ins[0]), _HUGE))
    if op == "Pad":
        x = ins[0]
        if len(ins) > 1 and ins[1] is not None:
            pads = [int(p) for p in np.asarray(ins[1]).reshape(-1)]
            axes = list(range(x.ndim))
            if len(ins) > 3 and ins[3] is not None:
                axes = [int(a) % x.ndim for a in np.asarray(ins[3]).reshape(-1)]
        else:
            pads, axes = list(attrs.get("pads") or []), list(range(x.ndim))
        shape = list(x.shape)
        k = len(axes)
        if len(pads) != 2 * k:
            return None
        for j, a in enumerate(axes):
            shape[a] += pads[j] + pads[k + j]
        return int(min(_prod(shape) * _item(x), _HUGE))
    if op in ("Resize", "Upsample"):
        x = ins[0]
        sizes = ins[3] if op == "Resize" and len(ins) > 3 and ins[3] is not None and \
            np.asarray(ins[3]).size else None
        if sizes is not None:
            sz = [float(v) for v in np.asarray(sizes).reshape(-1)]
            axes = attrs.get("axes")
            shape = [float(d) for d in x.shape]
            targets = [int(a) % x.ndim for a in axes] if axes else \
                list(range(x.ndim - len(sz), x.ndim))
            for a, s in zip(targets, sz):
                shape[a] = s
            return int(min(_prod(shape) * _item(x), _HUGE))
        scales = None
        if op == "Resize" and len(ins) > 2 and ins[2] is not None and np.asarray(ins[2]).size:
            scales = np.asarray(ins[2]).reshape(-1)
        elif op == "Upsample":
            scales = np.asarray(ins[1] if len(ins) > 1 and ins[1] is not None
                                else attrs.get("scales") or []).reshape(-1)
        if scales is None or scales.size == 0:
            return None
        axes = attrs.get("axes")
        shape = [float(d) for d in x.shape]
        targets = [int(a) % x.ndim for a in axes] if axes else list(range(x.ndim))
        for a, s in zip(targets, scales):
            shape[a] = math.floor(shape[a] * float(s))
        return int(min(_prod(shape) * _item(x), _HUGE))
    if op == "OneHot":
        indices, depth = ins[0], float(np.asarray(ins[1]).reshape(-1)[0])
        return int(min(indices.size * max(depth, 0) * _item(ins[2]), _HUGE))
    return None
