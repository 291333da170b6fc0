"""Einsum, Det, the random generators (RandomNormal/Uniform and their *Like forms, Multinomial,
Bernoulli) and the string ops (StringNormalizer, StringConcat, RegexFullMatch, StringSplit)."""

from __future__ import annotations

import re
import struct

import numpy as np
from onnx import helper

from providers.cpu.opset import register

_LOW_FLOATS = {np.dtype(np.float16), np.dtype(helper.tensor_dtype_to_np_dtype(16))}  # bf16


def _np_dtype(onnx_type: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(int(onnx_type)))


# --------------------------------------------------------------------------------------------
# Einsum, Det


@register("Einsum", since=12)
def einsum(*inputs, equation):
    """np.einsum on the equation (spaces removed); float16/bfloat16 accumulate in float32."""
    eq = equation.replace(" ", "")
    dtype = np.asarray(inputs[0]).dtype if inputs else np.dtype(np.float32)
    ops = [np.asarray(x) for x in inputs]
    if dtype in _LOW_FLOATS:
        ops = [x.astype(np.float32) for x in ops]
    # optimize=True lets numpy contract through BLAS (tensordot) where it can.
    out = np.einsum(eq, *ops, optimize=True)
    return np.asarray(out).astype(dtype, copy=False)


@register("Det", since=11)
def det(x):
    """Determinants of the trailing [M, M] matrices."""
    x = np.asarray(x)
    ct = np.float64 if x.dtype == np.float64 else np.float32
    return np.asarray(np.linalg.det(x.astype(ct))).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# Random generators. With ``seed`` the stream is reproducible (a generator seeded from the
# float's bits, fresh for every call); without it the session's generator is used.


def _generator(seed, ctx) -> np.random.Generator:
    if seed is not None:
        bits = struct.unpack("<Q", struct.pack("<d", float(seed)))[0]
        return np.random.default_rng(bits)
    if ctx is not None and ctx.rng is not None:
        return ctx.rng
    return np.random.default_rng()


def _shape(shape) -> tuple[int, ...]:
    if shape is None:
        raise ValueError("the 'shape' attribute is required")
    return tuple(int(d) for d in shape)


@register("RandomNormal", since=1)
def random_normal(*, dtype=1, mean=0.0, scale=1.0, seed=None, shape=None, _ctx=None):
    rng = _generator(seed, _ctx)
    return rng.normal(mean, scale, _shape(shape)).astype(_np_dtype(dtype))


@register("RandomUniform", since=1)
def random_uniform(*, dtype=1, high=1.0, low=0.0, seed=None, shape=None, _ctx=None):
    rng = _generator(seed, _ctx)
    return rng.uniform(low, high, _shape(shape)).astype(_np_dtype(dtype))


@register("RandomNormalLike", since=1)
def random_normal_like(x, *, dtype=None, mean=0.0, scale=1.0, seed=None, _ctx=None):
    out = np.asarray(x).dtype if dtype is None else _np_dtype(dtype)
    return _generator(seed, _ctx).normal(mean, scale, np.shape(x)).astype(out)


@register("RandomUniformLike", since=1)
def random_uniform_like(x, *, dtype=None, high=1.0, low=0.0, seed=None, _ctx=None):
    out = np.asarray(x).dtype if dtype is None else _np_dtype(dtype)
    return _generator(seed, _ctx).uniform(low, high, np.shape(x)).astype(out)


@register("Multinomial", since=7)
def multinomial(x, *, dtype=6, sample_size=1, seed=None, _ctx=None):
    """Samples class indices from unnormalized log-probabilities [batch, classes]."""
    logits = np.asarray(x, np.float64)
    if logits.ndim != 2:
        raise ValueError("Multinomial expects a [batch, class_size] input")
    rng = _generator(seed, _ctx)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random((logits.shape[0], int(sample_size)))
    idx = np.empty(u.shape, np.int64)
    for b in range(logits.shape[0]):
        idx[b] = np.minimum(np.searchsorted(cdf[b], u[b], side="right"), logits.shape[1] - 1)
    return idx.astype(_np_dtype(dtype))


@register("Bernoulli", since=15)
def bernoulli(x, *, dtype=None, seed=None, _ctx=None):
    """1 with probability x, else 0, in ``dtype`` (default: x's type)."""
    p = np.asarray(x)
    out = p.dtype if dtype is None else _np_dtype(dtype)
    draws = _generator(seed, _ctx).random(p.shape) < p.astype(np.float64)
    return draws.astype(out)


# --------------------------------------------------------------------------------------------
# Strings (numpy object arrays of str)


def _str_array(values, shape) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def _lower(w: str) -> str:
    """Character-wise lowercase: one character maps to one (as C's towlower; Python's
    str.lower would turn 'İ' into two characters)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in w)


def _upper(w: str) -> str:
    """Character-wise uppercase ('ß' stays 'ß' rather than becoming 'SS')."""
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in w)


@register("StringNormalizer", since=10)
def string_normalizer(x, *, case_change_action="NONE", is_case_sensitive=0, locale="",
                      stopwords=None):
    """Drop stopwords from a [C] or [1, C] string tensor, then change case. An empty result
    is [""] ([1] or [1, 1])."""
    x = np.asarray(x, dtype=object)
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise ValueError("StringNormalizer takes [C] or [1, C] inputs")
    if case_change_action not in ("NONE", "LOWER", "UPPER"):
        raise ValueError(f"unknown case_change_action '{case_change_action}'")
    words = list(x.reshape(-1))
    if stopwords:
        if is_case_sensitive:
            stops = set(stopwords)
            words = [w for w in words if w not in stops]
        else:
            stops = {_lower(s) for s in stopwords}
            words = [w for w in words if _lower(w) not in stops]
    if case_change_action == "LOWER":
        words = [_lower(w) for w in words]
    elif case_change_action == "UPPER":
        words = [_upper(w) for w in words]
    if not words:
        words = [""]
    shape = (len(words),) if x.ndim == 1 else (1, len(words))
    return _str_array(words, shape)


@register("StringConcat", since=20)
def string_concat(x, y):
    """Elementwise concatenation with broadcasting."""
    bx, by = np.broadcast_arrays(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
    flat = [a + b for a, b in zip(bx.reshape(-1), by.reshape(-1))]
    return _str_array(flat, bx.shape)


# RE2's end-of-text anchor \z is \Z in Python's re (an unescaped backslash before the z).
_RE2_END = re.compile(r"(?<!\\)((?:\\\\)*)\\z")


@register("RegexFullMatch", since=20)
def regex_full_match(x, *, pattern=None):
    """True where the whole string matches ``pattern`` (RE2 syntax, run on Python's re)."""
    if pattern is None:
        raise ValueError("RegexFullMatch needs a 'pattern'")
    compiled = re.compile(_RE2_END.sub(r"\1\\Z", pattern))
    x = np.asarray(x, dtype=object)
    flat = [compiled.fullmatch(s) is not None for s in x.reshape(-1)]
    return np.array(flat, dtype=bool).reshape(x.shape)


@register("StringSplit", since=20, dynamic_shape=True)
def string_split(x, *, delimiter=None, maxsplit=None):
    """Split every string: Y [*X.shape, max_parts] padded with "", Z [*X.shape] int64.
    Without a delimiter (or with ""), runs of whitespace separate and edges are trimmed.
    An empty string yields no substrings (as onnxruntime)."""
    x = np.asarray(x, dtype=object)
    limit = -1 if maxsplit is None else int(maxsplit)
    if delimiter:
        parts = [s.split(delimiter, limit) if s else [] for s in x.reshape(-1)]
    else:
        # Whitespace mode trims both ends first, so a maxsplit remainder has no trailing
        # blanks; an empty (or blank) string has no substrings.
        parts = [s.strip().split(None, limit) for s in x.reshape(-1)]
    counts = np.array([len(p) for p in parts], np.int64).reshape(x.shape)
    width = max((len(p) for p in parts), default=0)
    padded = [p + [""] * (width - len(p)) for p in parts]
    flat = [w for p in padded for w in p]
    return _str_array(flat, x.shape + (width,)), counts
