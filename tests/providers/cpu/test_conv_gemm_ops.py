"""Conv, ConvTranspose, Gemm, MatMul: the numpy implementations and the C++ kernels (through
their ``native=`` lowerings and native.run_call) against onnxruntime on single-node models, and
the onnx node test cases through the numpy path."""

from __future__ import annotations

import numpy as np
import pytest

from providers.cpu import native, opset
from tests.providers.cpu.node_case_runner import (
    assert_value_close,
    check_case,
    node_cases,
    ort_run,
    run_model,
    single_node_model,
)

OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
CASES = node_cases(OPS)
RNG = np.random.default_rng(1234)


def _rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


def _native_outputs(op_type, inputs, opset_version, attrs, pack_constants):
    impl = opset.get(op_type, "", opset_version)
    call = impl.native(list(inputs), impl.attrs_with_defaults(attrs))
    assert call is not None, f"{op_type} was not lowered to a C++ kernel"
    return native.run_call(call, list(inputs), pack_constants=pack_constants)


def check(op_type, inputs: dict, opset_version=17, rtol=1e-4, atol=1e-4, native_path=True,
          oracle="ort", **attrs):
    """numpy and native (weights packed and not) vs onnxruntime on a one-node model.

    ``oracle="reference"`` uses the onnx reference evaluator instead, for what onnxruntime
    does not implement (double Conv, integer Gemm, dilated SAME padding...)."""
    model = single_node_model(op_type, inputs, ["y"], opset_version, **attrs)
    feeds = {k: v for k, v in inputs.items() if v is not None}
    if oracle == "ort":
        (expected,) = ort_run(model, feeds)
    else:
        from onnx.reference import ReferenceEvaluator

        (expected,) = ReferenceEvaluator(model).run(None, feeds)
    (got,) = run_model(model, feeds, fallback=False)
    assert_value_close(expected, got, rtol, atol, f"{op_type} numpy")
    if native_path:
        for pack in (False, True):
            (got,) = _native_outputs(op_type, list(inputs.values()), opset_version, attrs, pack)
            assert_value_close(expected, got, rtol, atol, f"{op_type} native pack={pack}")


# ---- Gemm ---------------------------------------------------------------------------------

@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 7), (13, 33, 17), (64, 48, 300),
                                   (1, 100, 65), (100, 1, 65)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_gemm_transposes(m, n, k, trans_a, trans_b):
    a = _rand(k, m) if trans_a else _rand(m, k)
    b = _rand(n, k) if trans_b else _rand(k, n)
    check("Gemm", {"a": a, "b": b, "c": _rand(m, n)}, 13, transA=trans_a, transB=trans_b,
          alpha=0.7, beta=-1.5)


@pytest.mark.parametrize("c_shape", [None, (), (1,), (6,), (1, 6), (5, 1), (5, 6), (1, 1)])
def test_gemm_c_broadcast(c_shape):
    c = None if c_shape is None else _rand(*c_shape)
    check("Gemm", {"a": _rand(5, 4), "b": _rand(4, 6), "c": c}, 13, alpha=2.0, beta=0.5)


@pytest.mark.parametrize("opset_version", [7, 9, 11, 13])
def test_gemm_versions(opset_version):
    check("Gemm", {"a": _rand(3, 4), "b": _rand(4, 5), "c": _rand(5)}, opset_version,
          transA=0, transB=0)


def test_gemm_6_broadcast():
    # onnxruntime has no Gemm-6 kernel: the onnx reference evaluator is the oracle here.
    from onnx.reference import ReferenceEvaluator

    feeds = {"a": _rand(4, 3), "b": _rand(4, 5), "c": _rand(5)}
    attrs = {"broadcast": 1, "transA": 1, "alpha": 0.5, "beta": 2.0}
    model = single_node_model("Gemm", feeds, ["y"], 6, **attrs)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    (got,) = run_model(model, feeds, fallback=False)
    assert_value_close(expected, got, 1e-5, 1e-5)
    (got,) = _native_outputs("Gemm", list(feeds.values()), 6, attrs, True)
    assert_value_close(expected, got, 1e-5, 1e-5)


def test_gemm_beta_zero_ignores_c():
    check("Gemm", {"a": _rand(3, 4), "b": _rand(4, 5), "c": _rand(3, 5)}, 13, beta=0.0)


def test_gemm_float64_and_int_stay_numpy():
    impl = opset.get("Gemm", "", 13)
    a = _rand(3, 4, dtype=np.float64)
    assert impl.native([a, a.T.copy(), None], impl.attrs_with_defaults({})) is None
    check("Gemm", {"a": a, "b": _rand(4, 2, dtype=np.float64)}, 13, native_path=False)
    ai = RNG.integers(-5, 5, (3, 4)).astype(np.int32)
    check("Gemm", {"a": ai, "b": ai.T.copy()}, 13, native_path=False, oracle="reference")


# ---- MatMul -------------------------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [
    ((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 6)),
    ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((3, 1, 2, 7), (1, 4, 7, 3)), ((1, 1), (1, 1)),
    ((67, 129), (129, 33)), ((2, 0, 4), (4, 3)), ((2, 3, 0), (0, 5)),
])
def test_matmul_broadcasting(sa, sb):
    check("MatMul", {"a": _rand(*sa), "b": _rand(*sb)}, 13)


def test_matmul_float16_numpy():
    check("MatMul", {"a": _rand(3, 4, dtype=np.float16), "b": _rand(4, 2, dtype=np.float16)},
          13, rtol=1e-2, atol=1e-2, native_path=False)


def test_matmul_int():
    a = RNG.integers(-9, 9, (2, 3, 4)).astype(np.int64)
    check("MatMul", {"a": a, "b": RNG.integers(-9, 9, (4, 2)).astype(np.int64)}, 13,
          native_path=False)


# ---- Conv ---------------------------------------------------------------------------------

CONV_2D = [
    # (x shape, w shape, attrs)
    ((1, 3, 8, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 7), (5, 3, 3, 2), {"pads": [1, 0, 2, 1]}),
    ((1, 4, 10, 10), (6, 4, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 11, 9), (6, 4, 3, 3), {"strides": [3, 2], "dilations": [2, 1]}),
    ((1, 4, 12, 12), (6, 4, 3, 3), {"dilations": [2, 3], "pads": [2, 3, 2, 3]}),
    ((2, 6, 7, 7), (9, 2, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
    ((1, 8, 9, 9), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),            # depthwise
    ((2, 8, 10, 9), (8, 1, 5, 3), {"group": 8, "strides": [2, 2], "pads": [2, 1, 1, 0]}),
    ((1, 5, 13, 11), (5, 1, 3, 3), {"group": 5, "dilations": [2, 2], "strides": [1, 3]}),
    ((1, 4, 6, 6), (8, 1, 3, 3), {"group": 4}),                                  # multiplier 2
    ((2, 16, 7, 5), (12, 16, 1, 1), {}),                                         # pointwise
    ((1, 16, 7, 5), (12, 8, 1, 1), {"group": 2}),
    ((1, 16, 9, 9), (12, 16, 1, 1), {"strides": [2, 2]}),
    ((1, 3, 5, 5), (2, 3, 5, 5), {}),
    ((1, 3, 40, 37), (16, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ((1, 32, 20, 20), (40, 32, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((3, 2, 4, 4), (3, 2, 2, 2), {"pads": [0, 0, 3, 3]}),
]


@pytest.mark.parametrize("xs,ws,attrs", CONV_2D, ids=[str(i) for i in range(len(CONV_2D))])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_2d(xs, ws, attrs, bias):
    b = _rand(ws[0]) if bias else None
    check("Conv", {"x": _rand(*xs), "w": _rand(*ws), "b": b}, 11, **attrs)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"])
@pytest.mark.parametrize("strides", [[1, 1], [2, 2], [3, 2]])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 4), (1, 1)])
def test_conv_auto_pad(auto_pad, strides, kernel):
    check("Conv", {"x": _rand(1, 2, 9, 8), "w": _rand(3, 2, *kernel)}, 11, auto_pad=auto_pad,
          strides=strides)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_auto_pad_dilated(auto_pad):
    # onnxruntime refuses dilations with SAME padding.
    check("Conv", {"x": _rand(1, 2, 10, 9), "w": _rand(3, 2, 3, 2)}, 11, auto_pad=auto_pad,
          dilations=[2, 3], strides=[2, 1], oracle="reference")


@pytest.mark.parametrize("xs,ws,attrs", [
    ((1, 3, 20), (4, 3, 5), {}),
    ((2, 4, 31), (6, 2, 3), {"group": 2, "strides": [2], "pads": [1, 2]}),
    ((1, 4, 17), (4, 1, 3), {"group": 4, "dilations": [3], "pads": [3, 2]}),
    ((1, 4, 17), (4, 1, 3), {"group": 4, "strides": [2], "auto_pad": "SAME_UPPER"}),
    ((1, 3, 16), (5, 3, 1), {}),
])
def test_conv_1d(xs, ws, attrs):
    check("Conv", {"x": _rand(*xs), "w": _rand(*ws), "b": _rand(ws[0])}, 11, **attrs)


@pytest.mark.parametrize("xs,ws,attrs", [
    ((1, 2, 6, 7, 5), (3, 2, 3, 3, 3), {"pads": [1, 1, 1, 1, 1, 1]}),
    ((1, 4, 7, 6, 8), (4, 2, 2, 3, 2), {"group": 2, "strides": [2, 1, 2],
                                          "dilations": [1, 2, 1]}),
    ((2, 3, 5, 5, 5), (3, 1, 3, 3, 3), {"group": 3, "auto_pad": "SAME_LOWER"}),
])
def test_conv_3d(xs, ws, attrs):
    check("Conv", {"x": _rand(*xs), "w": _rand(*ws), "b": _rand(ws[0])}, 11, **attrs)


def test_conv_opset_1():
    check("Conv", {"x": _rand(1, 2, 6, 6), "w": _rand(3, 2, 3, 3)}, 1, pads=[1, 1, 1, 1])


def test_conv_float64_numpy():
    check("Conv", {"x": _rand(1, 2, 6, 6, dtype=np.float64),
                   "w": _rand(3, 2, 3, 3, dtype=np.float64)}, 11, native_path=False,
          oracle="reference")


def test_conv_fused_relu_activation():
    # The kernel's "activation" parameter (used by later fusions): conv + bias + relu/clip.
    x, w, b = _rand(1, 4, 9, 9), _rand(6, 4, 3, 3), _rand(6)
    impl = opset.get("Conv", "", 11)
    for act, extra, ref in [
            ("relu", {}, lambda y: np.maximum(y, 0)),
            ("clip", {"activation_alpha": -0.5, "activation_beta": 0.5},
             lambda y: np.clip(y, -0.5, 0.5))]:
        call = impl.native([x, w, b], impl.attrs_with_defaults({"pads": [1, 1, 1, 1]}))
        call.params.update(activation=act, **extra)
        (got,) = native.run_call(call, [x, w, b])
        want = ref(impl.compute(x, w, b, pads=[1, 1, 1, 1]))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---- ConvTranspose (numpy) ----------------------------------------------------------------

CONVT = [
    ((1, 2, 4, 4), (2, 3, 3, 3), {}),
    ((2, 3, 5, 4), (3, 2, 3, 2), {"strides": [2, 3]}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 2]}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "output_padding": [1, 1]}),
    ((1, 4, 4, 5), (4, 3, 3, 3), {"group": 2, "dilations": [2, 1]}),
    ((1, 2, 4, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [9, 10]}),
    ((1, 2, 4, 4), (2, 3, 3, 3), {"strides": [2, 2], "output_shape": [10, 8]}),
    ((1, 2, 4, 3), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 4, 3), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 4, 3), (2, 3, 3, 3), {"strides": [2, 1], "auto_pad": "VALID"}),
    ((1, 2, 7), (2, 3, 3), {"strides": [2]}),
    ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]}),
]


@pytest.mark.parametrize("xs,ws,attrs", CONVT, ids=[str(i) for i in range(len(CONVT))])
@pytest.mark.parametrize("opset_version", [10, 11])
def test_conv_transpose(xs, ws, attrs, opset_version):
    m = ws[1] * attrs.get("group", 1)
    check("ConvTranspose", {"x": _rand(*xs), "w": _rand(*ws), "b": _rand(m)}, opset_version,
          native_path=False, **attrs)


def test_conv_transpose_same_negative_padding():
    # SAME with stride > kernel: the spec (and the onnx reference) give in * stride outputs;
    # onnxruntime clamps the padding to 0 and returns a smaller output.
    check("ConvTranspose", {"x": _rand(1, 2, 4, 3), "w": _rand(2, 3, 2, 2)}, 11,
          native_path=False, oracle="reference", strides=[3, 3], auto_pad="SAME_UPPER")
