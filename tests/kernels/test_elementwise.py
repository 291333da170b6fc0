"""The C++ elementwise kernels (binary ops with broadcasting, PRelu, Clip and the unary
activations) against onnxruntime on every ISA this CPU supports and on 1 and 2 threads, and
the stated error bounds of the vectorized approximations against float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.op_kernel_cases import (
    check_native,
    lower_isas,
    native_outputs,
    run_in_subprocess,
)

fk = pytest.importorskip("ferry_kernels")

# Output-size variety: 1, primes, below / around / above the vector widths (8, 16) and the
# 2-vector unroll, and large enough to be split across threads.
SIZES = [1, 3, 7, 8, 15, 16, 17, 31, 33, 257, 4099, 70001]

# (A shape, B shape): same shape, scalars, rows, columns, channels, both sides broadcasting,
# size-1 axes everywhere, empty, repeated blocks.
BROADCAST = [
    ((), ()), ((7,), ()), ((), (7,)), ((1,), (5, 1)), ((3, 17), (17,)), ((3, 17), (3, 1)),
    ((2, 64, 9, 9), (64, 1, 1)), ((1, 3, 1, 5), (2, 1, 4, 1)), ((2, 3, 5, 7), (2, 1, 5, 1)),
    ((4, 1, 1), (1,)), ((2, 3, 4, 5, 6, 7), (3, 1, 5, 1, 7)), ((31, 33), (31, 33)),
    ((1, 1), (1, 1)), ((4, 0, 3), (3,)), ((5, 1), (1, 5)), ((257, 129), (129,)),
    ((9, 1, 300), (9, 17, 1)),
    # A short innermost block repeated along the axis above it (NCHWc times a per-channel
    # gate): tiled rows, with rows longer than one tile and a block of 64.
    ((1, 18, 7, 7, 8), (1, 18, 1, 1, 8)), ((2, 3, 300, 5), (2, 3, 1, 5)),
    ((3, 40, 64), (3, 1, 64)), ((2, 4, 33, 7), (1, 4, 1, 7)),
]


def _values(n: int, rng) -> np.ndarray:
    return (rng.standard_normal(n) * 3).astype(np.float32)


# op -> (opset, attrs, input transform, rtol, atol)
UNARY = {
    "Relu": (14, {}, None, 0, 0),
    "LeakyRelu": (16, {"alpha": 0.1}, None, 1e-6, 0),
    "Sigmoid": (13, {}, None, 1e-6, 1e-7),
    "Tanh": (13, {}, None, 1e-6, 1e-7),
    "Exp": (13, {}, None, 1e-6, 0),
    "Log": (13, {}, np.abs, 1e-6, 1e-7),
    "Sqrt": (13, {}, np.abs, 1e-6, 0),
    "Abs": (13, {}, None, 0, 0),
    "Neg": (13, {}, None, 0, 0),
    "Erf": (13, {}, None, 1e-6, 1e-7),
    "HardSigmoid": (22, {"alpha": 0.3, "beta": 0.4}, None, 1e-6, 1e-7),
    "HardSwish": (22, {}, None, 1e-6, 1e-7),
    "Elu": (22, {"alpha": 0.7}, None, 1e-6, 1e-7),
    "Softplus": (22, {}, None, 1e-6, 1e-7),
    "Selu": (22, {}, None, 1e-6, 1e-7),
    "Celu": (12, {"alpha": 1.5}, None, 1e-6, 1e-7),
    "Softsign": (22, {}, None, 1e-6, 0),
    "Mish": (22, {}, None, 2e-6, 1e-7),
    "ThresholdedRelu": (22, {"alpha": 0.5}, None, 0, 0),
    "Reciprocal": (13, {}, None, 1e-6, 0),
    "Floor": (13, {}, None, 0, 0),
    "Ceil": (13, {}, None, 0, 0),
    "Round": (22, {}, None, 0, 0),
    "Sign": (13, {}, None, 0, 0),
}


def run_unary_cases() -> None:
    rng = np.random.default_rng(11)
    specials = np.array([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-30, -1e-30, 30.0, -30.0,
                         88.0, -88.0, 100.0, -100.0], np.float32)
    for op, (version, attrs, transform, rtol, atol) in UNARY.items():
        for n in SIZES:
            x = _values(n, rng)
            x[: min(n, specials.size)] = specials[: min(n, specials.size)]
            if transform is not None:
                x = transform(x)
            check_native(op, version, {"x": x}, attrs, rtol=rtol, atol=atol)
    x = _values(1000, rng).reshape(10, 100) * 2
    check_native("Gelu", 20, {"x": x}, {}, rtol=2e-6, atol=1e-7)
    # onnxruntime evaluates 1 + tanh(u), which cancels for x < 0 (absolute error ~1e-7 * |x|);
    # ferry's x * sigmoid(2u) does not: compare with an absolute tolerance there.
    check_native("Gelu", 20, {"x": x}, {"approximate": "tanh"}, rtol=2e-6, atol=1e-6)


def run_clip_cases() -> None:
    rng = np.random.default_rng(12)
    for n in (1, 17, 4099):
        x = _values(n, rng)
        check_native("Clip", 6, {"x": x}, {"min": -0.5, "max": 0.25}, rtol=0, atol=0)
        check_native("Clip", 6, {"x": x}, {}, rtol=0, atol=0)
        lo, hi = np.float32(-1.0), np.float32(0.5)
        check_native("Clip", 13, {"x": x, "lo": lo, "hi": hi}, rtol=0, atol=0)
        check_native("Clip", 13, {"x": x, "lo": lo}, rtol=0, atol=0)
        check_native("Clip", 13, {"x": x, "lo": None, "hi": hi}, rtol=0, atol=0)
        check_native("Clip", 13, {"x": x}, rtol=0, atol=0)
        check_native("Clip", 13, {"x": x, "lo": hi, "hi": lo}, rtol=0, atol=0)  # min > max


def run_binary_cases() -> None:
    rng = np.random.default_rng(13)
    for sa, sb in BROADCAST:
        a = (rng.standard_normal(sa) * 2).astype(np.float32)
        b = (rng.standard_normal(sb) * 2).astype(np.float32)
        for op in ("Add", "Sub", "Mul", "Div"):
            check_native(op, 14, {"a": a, "b": b}, rtol=1e-6, atol=0)
            check_native(op, 14, {"b": b, "a": a}, rtol=1e-6, atol=0)
    for n in SIZES:
        a, b = _values(n, rng), _values(n, rng)
        check_native("Mul", 14, {"a": a, "b": b}, rtol=0, atol=0)


def run_prelu_cases() -> None:
    rng = np.random.default_rng(14)
    for sx, ss in [((2, 5, 3, 3), (5, 1, 1)), ((4, 7), (7,)), ((3,), (1,)), ((2, 3, 4), (2, 3, 4)),
                   ((1, 64, 17, 17), (64, 1, 1)), ((2, 3, 4), ()), ((5, 33), (1, 33))]:
        x = _values(int(np.prod(sx)), rng).reshape(sx)
        s = (rng.standard_normal(ss) * 0.3).astype(np.float32)
        check_native("PRelu", 16, {"x": x, "slope": s}, rtol=1e-6, atol=0)


def run_all_cases() -> None:
    run_unary_cases()
    run_clip_cases()
    run_binary_cases()
    run_prelu_cases()
    check_error_bounds()


# --------------------------------------------------------------------------------------------
# Error bounds of the approximations (kernels_cpp/include/ferry/vecmath.h) against float64.


def _f64_refs():
    from providers.cpu.ops.activation import _erf

    def expit(v):
        e = np.exp(-np.abs(v))
        return np.where(v >= 0, 1 / (1 + e), e / (1 + e))

    def softplus(v):
        return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))

    return {
        # op: (reference, attrs, domain filter, max relative error stated in vecmath.h)
        "Exp": (np.exp, {}, lambda x: x < 88.7, 1.3e-7),
        "Log": (np.log, {}, lambda x: x > 0, 1.5e-7),
        "Tanh": (np.tanh, {}, None, 4e-7),
        "Sigmoid": (expit, {}, None, 3e-7),
        "Erf": (_erf, {}, None, 3e-7),
        "Softplus": (softplus, {}, None, 4e-7),
        "Elu": (lambda v: np.where(v >= 0, v, np.expm1(v)), {}, None, 2e-7),
        "Gelu": (lambda v: 0.5 * v * (1 + _erf(v / np.sqrt(2))), {}, lambda x: x > -5, 1e-6),
        "Mish": (lambda v: v * np.tanh(softplus(v)), {}, lambda x: x > -80, 5e-7),
    }


def check_error_bounds() -> None:
    x = np.concatenate([np.linspace(-100, 100, 100001), np.linspace(-9, 9, 200001),
                        np.geomspace(1e-30, 1e30, 20001), -np.geomspace(1e-30, 1e30, 20001)])
    x = x.astype(np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        for op, (ref, attrs, keep, bound) in _f64_refs().items():
            got = native_outputs(op, 22, [x], attrs)[0].astype(np.float64)
            want = ref(x64)
            # Normal float results only (denormals carry fewer bits by construction).
            ok = np.isfinite(want) & (np.abs(want) >= np.finfo(np.float32).tiny)
            if keep is not None:
                ok &= keep(x64)
            rel = np.abs(got[ok] - want[ok]) / np.abs(want[ok])
            worst = int(np.argmax(rel))
            assert rel[worst] <= bound, (
                f"{op}: relative error {rel[worst]:.3g} at x={x[ok][worst]!r} > {bound}")
    # Special values: NaN stays NaN, the limits are exact.
    sp = np.array([np.nan, np.inf, -np.inf], np.float32)
    with np.errstate(all="ignore"):
        for op in ("Exp", "Log", "Tanh", "Sigmoid", "Erf", "Softplus", "Relu", "Clip"):
            got = native_outputs(op, 13 if op == "Clip" else 22, [sp], {})[0]
            assert np.isnan(got[0]), op
    np.testing.assert_array_equal(native_outputs("Exp", 22, [sp], {})[0][1:], [np.inf, 0])
    np.testing.assert_array_equal(native_outputs("Tanh", 22, [sp], {})[0][1:], [1, -1])
    np.testing.assert_array_equal(native_outputs("Sigmoid", 22, [sp], {})[0][1:], [1, 0])
    np.testing.assert_array_equal(native_outputs("Erf", 22, [sp], {})[0][1:], [1, -1])
    logs = native_outputs("Log", 22, [np.array([0, -1, np.inf, 1e-45], np.float32)], {})[0]
    assert logs[0] == -np.inf and np.isnan(logs[1]) and logs[2] == np.inf
    np.testing.assert_allclose(logs[3], np.log(np.float64(np.float32(1e-45))), rtol=1e-6)


def test_active_isa():
    run_all_cases()


@pytest.mark.parametrize("isa", lower_isas())
def test_lower_isa(isa):
    run_in_subprocess("tests.kernels.test_elementwise", isa)


def test_binary_rejects_bad_shapes():
    with pytest.raises(ValueError, match="broadcast"):
        fk.make_kernel("Add", {}, [[3], [4]], ["float32"] * 2, [[4]], ["float32"], {})
    with pytest.raises(ValueError, match="float32"):
        fk.make_kernel("Add", {}, [[3], [3]], ["float64"] * 2, [[3]], ["float64"], {})


def test_in_place_output():
    """A plan may give the output the memory of an input (in-place reuse)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 40)).astype(np.float32)
    b = rng.standard_normal((40,)).astype(np.float32)
    want = a + b
    k = fk.make_kernel("Add", {}, [[3, 40], [40]], ["float32"] * 2, [[3, 40]], ["float32"], {})
    k.run([a, b], [a])
    np.testing.assert_array_equal(a, want)
    x = rng.standard_normal(1000).astype(np.float32)
    want = np.maximum(x, 0)
    k = fk.make_kernel("Relu", {}, [[1000]], ["float32"], [[1000]], ["float32"], {})
    k.run([x], [x])
    np.testing.assert_array_equal(x, want)
