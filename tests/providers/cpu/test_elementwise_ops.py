"""Add, Sub, Mul, Div, Pow, Mod, Max, Min, Sum, Mean, PRelu: onnx node cases, and the numpy
implementations and (for float32) the C++ kernels against onnxruntime."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from providers.cpu import native, opset
from tests.kernels.op_kernel_cases import check_numpy_and_native
from tests.providers.cpu.node_case_runner import check_case, node_cases

OPS = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "PRelu"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# numpy vs onnxruntime, then the C++ kernel when the op lowers (shared helper)
both = functools.partial(check_numpy_and_native, rtol=1e-06, atol=1e-06)


rng = np.random.default_rng(0)

# Broadcast patterns: size 1, primes, non-multiples of 16, rows, columns, channels, both.
PAIRS = [((), ()), ((1,), (1,)), ((7,), ()), ((), (13,)), ((3, 17), (17,)), ((3, 17), (3, 1)),
         ((2, 5, 9, 9), (5, 1, 1)), ((1, 3, 1, 5), (2, 1, 4, 1)), ((31, 33), (31, 33)),
         ((5, 1), (1, 5)), ((2, 0, 3), (3,)), ((2, 3, 4, 5, 6), (3, 1, 5, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("sa,sb", PAIRS)
def test_arith_float32(op, sa, sb):
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.standard_normal(sb) + 3).astype(np.float32)
    both(op, 14, {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.float16, np.uint8])
def test_arith_types(op, dtype):
    a = rng.integers(-50, 50, (4, 5)).astype(dtype)
    b = rng.integers(1, 9, (5,)).astype(dtype)
    if dtype != np.uint8:
        b[::2] = -b[::2]  # negative divisors: integer division truncates toward zero
    both(op, 14, {"a": a, "b": b}, rtol=1e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("sa,sb,axis", [((2, 3, 4, 5), (5,), None), ((2, 3, 4, 5), (4, 5), None),
                                        ((2, 3, 4, 5), (3, 4), 1), ((2, 3, 4, 5), (2,), 0),
                                        ((2, 3, 4, 5), (), None), ((2, 3, 4, 5), (1, 1), None),
                                        ((2, 3, 4, 5), (3,), -3)])
def test_legacy_broadcast(op, sa, sb, axis):
    """Opset < 7: B broadcasts to A only with broadcast=1, aligned at ``axis``. onnxruntime has
    no opset-6 arithmetic, so the reference is B reshaped by hand."""
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.standard_normal(sb) + 3).astype(np.float32)
    if axis is None or b.size == 1:
        b_view = b.reshape(()) if b.size == 1 else b
    else:
        start = axis % len(sa)
        b_view = b.reshape(b.shape + (1,) * (len(sa) - start - b.ndim))
    want = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](
        a, b_view)
    attrs = {"broadcast": 1} if axis is None else {"broadcast": 1, "axis": axis}
    impl = opset.get(op, "", 6)
    got = impl.call([a, b], impl.attrs_with_defaults(attrs), None)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    if native.available():
        from tests.kernels.op_kernel_cases import check_native

        check_native(op, 6, {"a": a, "b": b}, attrs, expected=[want], rtol=1e-6, atol=0)


def test_legacy_broadcast_off_needs_equal_shapes():
    impl = opset.get("Add", "", 6)
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="broadcast"):
        impl.call([a, np.ones(3, np.float32)], impl.attrs_with_defaults({}), None)
    np.testing.assert_array_equal(impl.call([a, a], impl.attrs_with_defaults({}), None)[0], a + a)


@pytest.mark.parametrize("xt,yt", [(np.float32, np.float32), (np.float32, np.int64),
                                   (np.int64, np.int64), (np.int32, np.float32),
                                   (np.float64, np.float64), (np.int32, np.int32)])
def test_pow(xt, yt):
    x = rng.integers(1, 6, (3, 4)).astype(xt)
    y = rng.integers(0, 4, (4,)).astype(yt)
    if np.dtype(xt).kind == "f":
        x = x * np.asarray(0.7, xt)
    both("Pow", 15, {"x": x, "e": y}, rtol=1e-5)


def test_pow_float_exponent_fractional():
    x = np.abs(rng.standard_normal((5, 7))).astype(np.float32)
    y = rng.standard_normal((7,)).astype(np.float32)
    both("Pow", 15, {"x": x, "e": y}, rtol=1e-5)


@pytest.mark.parametrize("dtype,fmod", [(np.int64, 0), (np.int32, 0), (np.int64, 1),
                                        (np.float32, 1), (np.float64, 1), (np.uint8, 0)])
def test_mod(dtype, fmod):
    a = rng.integers(-20, 20, (4, 6)).astype(dtype) if dtype != np.uint8 else rng.integers(
        0, 200, (4, 6)).astype(dtype)
    b = rng.integers(1, 7, (6,)).astype(dtype)
    if dtype != np.uint8:
        b[1::2] = -b[1::2]
    if np.dtype(dtype).kind == "f":
        a = a * np.asarray(1.3, dtype)
    both("Mod", 13, {"a": a, "b": b}, fmod=fmod)


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (3, 4)], [(2, 1, 4), (3, 1), (4,)],
                                    [(5,), (), (1, 5)], [(1,), (2, 2)]])
def test_variadic(op, shapes):
    inputs = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    both(op, 13, inputs)


@pytest.mark.parametrize("op,dtype", [("Max", np.int32), ("Max", np.int64), ("Min", np.uint8),
                                      ("Min", np.float64), ("Sum", np.float64),
                                      ("Sum", np.float16), ("Max", np.float16)])
def test_variadic_types(op, dtype):
    inputs = {f"x{i}": rng.integers(-9, 9, s).astype(dtype) for i, s in enumerate([(2, 3), (3,)])}
    both(op, 13, inputs)


@pytest.mark.parametrize("sx,ss", [((2, 5, 3, 3), (5, 1, 1)), ((4, 7), (7,)), ((3,), (1,)),
                                   ((2, 3, 4), (2, 3, 4)), ((1, 16, 9, 9), (16, 1, 1)),
                                   ((2, 3, 4), ()), ((5, 33), (1, 33))])
def test_prelu(sx, ss):
    x = rng.standard_normal(sx).astype(np.float32)
    s = (rng.standard_normal(ss) * 0.3).astype(np.float32)
    both("PRelu", 16, {"x": x, "slope": s})


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
def test_prelu_types(dtype):
    x = rng.integers(-9, 9, (3, 4)).astype(dtype)
    s = rng.integers(1, 3, (4,)).astype(dtype)
    both("PRelu", 16, {"x": x, "slope": s})


def test_prelu_legacy_per_channel_slope():
    """Opset 6 models give a [C] slope for [N, C, H, W] inputs: one slope per channel."""
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    s = np.array([0.1, 0.2, 0.3], np.float32)
    impl = opset.get("PRelu", "", 6)
    want = np.where(x < 0, x * s[:, None, None], x)
    np.testing.assert_allclose(impl.call([x, s], {}, None)[0], want, rtol=1e-6)
    if native.available():
        from tests.kernels.op_kernel_cases import check_native

        check_native("PRelu", 6, {"x": x, "s": s}, {}, expected=[want], rtol=1e-6, atol=0)
