"""Output sizes of the ops whose output size is set by input *values* (ConstantOfShape,
Expand, Tile, Range, Pad, Resize, Upsample, OneHot), computed before the op runs so a hostile
or mistaken model is refused before anything is allocated ("allocation bombs")."""

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


def _predict(op: str, ins: list, attrs: dict) -> int | None:
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
