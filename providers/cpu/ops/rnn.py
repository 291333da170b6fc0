"""Recurrent ops: RNN, GRU, LSTM (numpy reference implementations and C++ lowerings).

All three share the same frame: inputs in [seq, batch, feature] (layout 0) or
[batch, seq, feature] (layout 1, since opset 14), one weight set per direction,
per-batch ``sequence_lens`` and optional initial states. Every output is optional.

float32 nodes with the default activations run on the C++ kernels "LSTM", "GRU" and "RNN"
(kernels_cpp/src/rnn/rnn.cpp: one GEMM for the input projection of all steps, one per step
for the recurrence, W and R packed once when they are graph constants); everything else
(other activations, other dtypes, shapes the spec rejects) takes the numpy path below.
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import NativeCall, register

# --------------------------------------------------------------------------------------------
# Activations. Alpha/beta defaults are those of the ONNX operators of the same name.

_ACTIVATION_DEFAULTS = {
    # name: (uses_alpha, uses_beta, default_alpha, default_beta)
    "relu": (False, False, 0.0, 0.0),
    "tanh": (False, False, 0.0, 0.0),
    "sigmoid": (False, False, 0.0, 0.0),
    "affine": (True, True, 1.0, 0.0),
    "leakyrelu": (True, False, 0.01, 0.0),
    "thresholdedrelu": (True, False, 1.0, 0.0),
    "scaledtanh": (True, True, 1.0, 1.0),
    "hardsigmoid": (True, True, 0.2, 0.5),
    "elu": (True, False, 1.0, 0.0),
    "softsign": (False, False, 0.0, 0.0),
    "softplus": (False, False, 0.0, 0.0),
}


def _sigmoid(x):
    # Split by sign so that exp never overflows.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _make_activation(name: str, alpha: float, beta: float):
    key = name.lower()
    if key == "relu":
        return lambda x: np.maximum(x, 0)
    if key == "tanh":
        return np.tanh
    if key == "sigmoid":
        return _sigmoid
    if key == "affine":
        return lambda x: alpha * x + beta
    if key == "leakyrelu":
        return lambda x: np.where(x >= 0, x, alpha * x)
    if key == "thresholdedrelu":
        return lambda x: np.where(x > alpha, x, 0)
    if key == "scaledtanh":
        return lambda x: alpha * np.tanh(beta * x)
    if key == "hardsigmoid":
        return lambda x: np.clip(alpha * x + beta, 0, 1)
    if key == "elu":
        return lambda x: np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))
    if key == "softsign":
        return lambda x: x / (1 + np.abs(x))
    if key == "softplus":
        return lambda x: np.logaddexp(0, x)
    raise ValueError(f"unsupported RNN activation function '{name}'")


def _activations(names, alphas, betas, defaults: list[str], num_directions: int) -> list:
    """One list of callables per direction. ``activation_alpha``/``activation_beta`` are
    consumed in order by the functions that take them (as onnxruntime does); missing values
    fall back to the defaults of the ONNX operator of the same name."""
    per_dir = len(defaults)
    if not names:
        names = defaults * num_directions
    elif len(names) == per_dir and num_directions == 2:
        names = list(names) * 2
    if len(names) != per_dir * num_directions:
        raise ValueError(
            f"expected {per_dir * num_directions} activation functions, got {len(names)}")
    alphas = list(alphas or [])
    betas = list(betas or [])
    funcs = []
    for name in names:
        key = name.lower()
        if key not in _ACTIVATION_DEFAULTS:
            raise ValueError(f"unsupported RNN activation function '{name}'")
        uses_a, uses_b, alpha, beta = _ACTIVATION_DEFAULTS[key]
        if uses_a and alphas:
            alpha = alphas.pop(0)
        if uses_b and betas:
            beta = betas.pop(0)
        funcs.append(_make_activation(key, alpha, beta))
    return [funcs[d * per_dir:(d + 1) * per_dir] for d in range(num_directions)]


# --------------------------------------------------------------------------------------------
# Shared frame


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


class _Frame:
    """Inputs of one recurrent node, normalized to layout 0 and the compute dtype."""

    def __init__(self, x, w, r, b, sequence_lens, initial_states, hidden_size, direction,
                 layout, gates):
        self.out_dtype = x.dtype
        ct = _compute_dtype(x.dtype)
        if layout == 1:
            x = np.swapaxes(x, 0, 1)
            initial_states = [None if s is None else np.swapaxes(s, 0, 1)
                              for s in initial_states]
        self.x = np.asarray(x, dtype=ct)
        self.seq_len, self.batch, _ = self.x.shape
        self.num_directions = 2 if direction == "bidirectional" else 1
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"unknown direction '{direction}'")
        self.reverse = [direction == "reverse"] if self.num_directions == 1 else [False, True]
        self.w = np.asarray(w, dtype=ct)
        self.r = np.asarray(r, dtype=ct)
        self.hidden = int(hidden_size) if hidden_size else self.r.shape[-1]
        h = self.hidden
        # Shapes checked before anything is sized by hidden_size (a hostile attribute must not
        # allocate): W [dirs, gates*h, in], R [dirs, gates*h, h], B [dirs, 2*gates*h].
        nd = self.num_directions
        if self.w.ndim != 3 or self.w.shape[:2] != (nd, gates * h) or \
                self.w.shape[2] != self.x.shape[2]:
            raise ValueError(f"W of shape {self.w.shape} does not match {nd} direction(s), "
                             f"{gates} gate(s), hidden_size {h} and input size {self.x.shape[2]}")
        if self.r.shape != (nd, gates * h, h):
            raise ValueError(f"R of shape {self.r.shape} is not {(nd, gates * h, h)} "
                             f"(hidden_size {h})")
        if b is not None and np.shape(b) != (nd, 2 * gates * h):
            raise ValueError(f"B of shape {np.shape(b)} is not {(nd, 2 * gates * h)}")
        if b is None:
            b = np.zeros((self.num_directions, 2 * gates * h), dtype=ct)
        self.b = np.asarray(b, dtype=ct)
        if sequence_lens is None:
            lens = np.full(self.batch, self.seq_len, dtype=np.int64)
        else:
            lens = np.asarray(sequence_lens).astype(np.int64).reshape(-1)
            if lens.shape[0] != self.batch:
                raise ValueError("sequence_lens must have batch_size entries")
            if (lens < 0).any() or (lens > self.seq_len).any():
                raise ValueError("sequence_lens values must be in [0, seq_length]")
        self.lens = lens
        self.initial = [
            np.zeros((self.num_directions, self.batch, h), dtype=ct) if s is None
            else np.asarray(s, dtype=ct) for s in initial_states
        ]
        self.layout = layout
        self.ct = ct

    def steps(self, reverse: bool):
        """Time indices in processing order, each with the mask of batch rows it updates."""
        order = range(self.seq_len - 1, -1, -1) if reverse else range(self.seq_len)
        for t in order:
            yield t, (t < self.lens)[:, None]

    def outputs(self, ys: list, finals: list[list]):
        """Assemble Y ([seq, dirs, batch, hidden]) and final states, then apply layout."""
        y = np.stack(ys, axis=1)
        states = [np.stack(per_dir, axis=0) for per_dir in finals]
        # A batch row with sequence length 0 has no last step: its final states are zeros
        # (onnxruntime's behaviour), not the initial states.
        empty = (self.lens == 0)[None, :, None]
        states = [np.where(empty, 0, s) for s in states]
        if self.layout == 1:
            y = np.transpose(y, (2, 0, 1, 3))
            states = [np.swapaxes(s, 0, 1) for s in states]
        cast = [y] + states
        return tuple(np.ascontiguousarray(v).astype(self.out_dtype, copy=False) for v in cast)


def _clip(x, clip):
    return x if clip is None else np.clip(x, -clip, clip)


# --------------------------------------------------------------------------------------------
# C++ lowering

_F32 = np.dtype(np.float32)
_DEFAULT_ACTIVATIONS = {"RNN": ["tanh"], "GRU": ["sigmoid", "tanh"],
                        "LSTM": ["sigmoid", "tanh", "tanh"]}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _native(op: str, inputs, attrs) -> NativeCall | None:
    """NativeCall for one RNN/GRU/LSTM node, or None when numpy must run it (non-default
    activations, other dtypes, or shapes the numpy path rejects with its own error)."""
    n_in = 8 if op == "LSTM" else 6
    ins = list(inputs[:n_in]) + [None] * (n_in - len(inputs))
    x, w, r = ins[0], ins[1], ins[2]
    if x is None or w is None or r is None:
        return None
    direction = attrs.get("direction") or "forward"
    if direction not in ("forward", "reverse", "bidirectional"):
        return None
    nd = 2 if direction == "bidirectional" else 1
    defaults = _DEFAULT_ACTIVATIONS[op]
    names = attrs.get("activations")
    if names:
        names = [str(n).lower() for n in names]
        if names not in (defaults, defaults * nd):
            return None
    for j, v in enumerate(ins):
        if v is None:
            continue
        if v.dtype != (np.dtype(np.int32) if j == 4 else _F32):
            return None
    layout = int(attrs.get("layout") or 0)
    if layout not in (0, 1) or x.ndim != 3:
        return None
    seq, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
    g = _GATES[op]
    if r.ndim != 3:
        return None
    hidden = int(attrs["hidden_size"]) if attrs.get("hidden_size") else int(r.shape[-1])
    if hidden < 1:
        return None
    state = (nd, batch, hidden) if layout == 0 else (batch, nd, hidden)
    expect = {1: (nd, g * hidden, x.shape[2]), 2: (nd, g * hidden, hidden),
              3: (nd, 2 * g * hidden), 4: (batch,), 5: state, 6: state, 7: (nd, 3 * hidden)}
    for j, shape in expect.items():
        if j < n_in and ins[j] is not None and ins[j].shape != shape:
            return None
    lens = ins[4]
    if lens is not None and ((lens < 0).any() or (lens > seq).any()):
        return None  # numpy raises the error (the kernel checks again at run time)
    clip = attrs.get("clip")
    if clip is not None and not float(clip) > 0:
        return None  # the spec wants a positive threshold; numpy keeps np.clip's reading
    params = {
        "hidden_size": hidden,
        "directions": [0, 1] if nd == 2 else [1 if direction == "reverse" else 0],
        "layout": layout,
        "has_clip": int(clip is not None),
        "clip": float(clip) if clip is not None else 0.0,
        "input_forget": int(bool(attrs.get("input_forget") or 0)) if op == "LSTM" else 0,
        "linear_before_reset": int(bool(attrs.get("linear_before_reset") or 0))
        if op == "GRU" else 0,
    }
    y = (seq, nd, batch, hidden) if layout == 0 else (batch, seq, nd, hidden)
    n_out = 3 if op == "LSTM" else 2
    # Trailing absent inputs are cut so the kernel never sees more inputs than the node has.
    last = max(j for j, v in enumerate(ins) if v is not None)
    return NativeCall(op, params, [y] + [state] * (n_out - 1), [_F32] * n_out,
                      inputs=list(range(last + 1)),
                      constant_inputs=tuple(j for j in (1, 2, 3, 7) if j <= last))


def _rnn_native(inputs, attrs):
    return _native("RNN", inputs, attrs)


def _gru_native(inputs, attrs):
    return _native("GRU", inputs, attrs)


def _lstm_native(inputs, attrs):
    return _native("LSTM", inputs, attrs)


# --------------------------------------------------------------------------------------------
# RNN


@register("RNN", since=1, native=_rnn_native)
def rnn(x, w, r, b=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, layout=0, output_sequence=0):
    """Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi). ``output_sequence`` (opset 1) only
    said whether Y may be omitted, which optional outputs express anyway."""
    fr = _Frame(x, w, r, b, sequence_lens, [initial_h], hidden_size, direction, layout, 1)
    acts = _activations(activations, activation_alpha, activation_beta, ["Tanh"],
                        fr.num_directions)
    h_size = fr.hidden
    ys, finals = [], []
    for d in range(fr.num_directions):
        (f,) = acts[d]
        wd, rd = fr.w[d], fr.r[d]
        bias = fr.b[d, :h_size] + fr.b[d, h_size:]
        xw = fr.x @ wd.T + bias  # all time steps at once
        h = fr.initial[0][d].copy()
        y = np.zeros((fr.seq_len, fr.batch, h_size), fr.ct)
        for t, m in fr.steps(fr.reverse[d]):
            h_new = f(_clip(xw[t] + h @ rd.T, clip))
            h = np.where(m, h_new, h)
            y[t] = np.where(m, h_new, 0)
        ys.append(y)
        finals.append(h)
    y, y_h = fr.outputs(ys, [finals])
    return y, y_h


# --------------------------------------------------------------------------------------------
# GRU


@register("GRU", since=1, native=_gru_native)
def gru(x, w, r, b=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward",
        hidden_size=None, layout=0, linear_before_reset=0, output_sequence=0):
    """Gates z, r, h in that order in W, R and B."""
    fr = _Frame(x, w, r, b, sequence_lens, [initial_h], hidden_size, direction, layout, 3)
    acts = _activations(activations, activation_alpha, activation_beta, ["Sigmoid", "Tanh"],
                        fr.num_directions)
    hs = fr.hidden
    ys, finals = [], []
    for d in range(fr.num_directions):
        f, g = acts[d]
        wd, rd = fr.w[d], fr.r[d]
        wb, rb = fr.b[d, :3 * hs], fr.b[d, 3 * hs:]
        xw = fr.x @ wd.T + wb
        r_zr, r_h = rd[:2 * hs], rd[2 * hs:]
        rb_zr, rb_h = rb[:2 * hs], rb[2 * hs:]
        h = fr.initial[0][d].copy()
        y = np.zeros((fr.seq_len, fr.batch, hs), fr.ct)
        for t, m in fr.steps(fr.reverse[d]):
            zr = f(_clip(xw[t, :, :2 * hs] + h @ r_zr.T + rb_zr, clip))
            z, rt = zr[:, :hs], zr[:, hs:]
            if linear_before_reset:
                pre = xw[t, :, 2 * hs:] + rt * (h @ r_h.T + rb_h)
            else:
                pre = xw[t, :, 2 * hs:] + (rt * h) @ r_h.T + rb_h
            ht = g(_clip(pre, clip))
            h_new = (1 - z) * ht + z * h
            h = np.where(m, h_new, h)
            y[t] = np.where(m, h_new, 0)
        ys.append(y)
        finals.append(h)
    y, y_h = fr.outputs(ys, [finals])
    return y, y_h


# --------------------------------------------------------------------------------------------
# LSTM


@register("LSTM", since=1, native=_lstm_native)
def lstm(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, output_sequence=0):
    """Gates i, o, f, c in W, R and B; peepholes i, o, f in P."""
    fr = _Frame(x, w, r, b, sequence_lens, [initial_h, initial_c], hidden_size, direction,
                layout, 4)
    acts = _activations(activations, activation_alpha, activation_beta,
                        ["Sigmoid", "Tanh", "Tanh"], fr.num_directions)
    hs = fr.hidden
    if p is None:
        p = np.zeros((fr.num_directions, 3 * hs), fr.ct)
    p = np.asarray(p, dtype=fr.ct)
    ys, finals_h, finals_c = [], [], []
    for d in range(fr.num_directions):
        f, g, hf = acts[d]
        wd, rd = fr.w[d], fr.r[d]
        bias = fr.b[d, :4 * hs] + fr.b[d, 4 * hs:]
        xw = fr.x @ wd.T + bias
        p_i, p_o, p_f = p[d, :hs], p[d, hs:2 * hs], p[d, 2 * hs:]
        h = fr.initial[0][d].copy()
        c = fr.initial[1][d].copy()
        y = np.zeros((fr.seq_len, fr.batch, hs), fr.ct)
        for t, m in fr.steps(fr.reverse[d]):
            gates = xw[t] + h @ rd.T
            gi, go, gf, gc = (gates[:, k * hs:(k + 1) * hs] for k in range(4))
            it = f(_clip(gi + p_i * c, clip))
            ft = 1 - it if input_forget else f(_clip(gf + p_f * c, clip))
            ct = g(_clip(gc, clip))
            c_new = ft * c + it * ct
            ot = f(_clip(go + p_o * c_new, clip))
            h_new = ot * hf(c_new)
            h = np.where(m, h_new, h)
            c = np.where(m, c_new, c)
            y[t] = np.where(m, h_new, 0)
        ys.append(y)
        finals_h.append(h)
        finals_c.append(c)
    y, y_h, y_c = fr.outputs(ys, [finals_h, finals_c])
    return y, y_h, y_c
