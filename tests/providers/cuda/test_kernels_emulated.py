"""emulation: CUDA kernels (numpy host emulation) against onnxruntime's CPU provider on
attribute combinations and dtypes the conformance cases leave out."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import make_model, ort_run
from tests.providers.cuda.cases import cuda_session

pytestmark = pytest.mark.emulation

F = TensorProto.FLOAT
rng = np.random.default_rng(0)


def _run_both(model, feeds, rtol=1e-4, atol=1e-5, **cuda_options):
    model = _typed_outputs(model)
    sess = cuda_session(model, **cuda_options)
    got = sess.run(None, feeds)
    want = ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                       atol=atol)
    assert all(n["provider"] == "cuda" for n in sess.explain()["nodes"])
    return sess


def _typed_outputs(model):
    """Output types from onnx shape inference (declared outputs must be typed)."""
    for o in model.graph.output:
        if not o.type.tensor_type.elem_type:
            o.ClearField("type")
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(
        inferred.graph.output)}
    for o in model.graph.output:
        if not o.HasField("type") and o.name in types:
            o.type.tensor_type.elem_type = types[o.name].tensor_type.elem_type
    return model


def _one(op, inputs, attrs=None, opset=17, n_out=1, inits=()):
    """A one-node model; ``inputs`` are (name, array) pairs fed at run time."""
    names = [n for n, _ in inputs] + [n for n, _ in inits]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    ins = [(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape)) for n, a in inputs]
    return make_model([node], ins, [(o, 0, None) for o in outs], initializers=inits,
                      opset=opset), dict(inputs)


def _x(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("attrs,xshape,wshape", [
    ({}, (1, 3, 8, 8), (4, 3, 3, 3)),
    ({"pads": [1, 2, 0, 1], "strides": [2, 1]}, (2, 4, 9, 7), (6, 4, 3, 2)),
    ({"dilations": [2, 2], "pads": [2, 2, 2, 2]}, (1, 2, 10, 10), (3, 2, 3, 3)),
    ({"group": 2, "pads": [1, 1, 1, 1]}, (1, 4, 6, 6), (6, 2, 3, 3)),
    ({"group": 4}, (2, 4, 5, 5), (4, 1, 3, 3)),  # depthwise
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (1, 3, 7, 8), (2, 3, 4, 3)),
    ({"auto_pad": "SAME_LOWER", "strides": [2, 2]}, (1, 3, 7, 8), (2, 3, 4, 3)),
    ({"auto_pad": "VALID", "strides": [3, 2]}, (1, 3, 9, 9), (2, 3, 3, 3)),
    ({"strides": [2, 2]}, (1, 8, 6, 6), (5, 8, 1, 1)),  # pointwise, strided
    ({"pads": [1, 1]}, (2, 3, 11), (4, 3, 3)),  # 1-D
    ({"pads": [1, 0, 1, 1, 0, 1]}, (1, 2, 4, 5, 6), (3, 2, 3, 2, 3)),  # 3-D
])
@pytest.mark.parametrize("search", ["HEURISTIC", "EXHAUSTIVE"])
def test_conv(attrs, xshape, wshape, search):
    x, w, b = _x(*xshape), _x(*wshape), _x(wshape[0])
    model, feeds = _one("Conv", [("x", x)], attrs, inits=[("w", w), ("b", b)])
    sess = _run_both(model, feeds, cudnn_conv_algo_search=search)
    algos = sess.explain()["partitions"][0]["details"]["conv_algorithms"]
    assert len(algos) == 1
    assert next(iter(algos.values())) in ("pointwise_gemm", "im2col_gemm", "cudnn")
    sess.run(None, feeds)  # second run: the cached choice
    assert sess.explain()["partitions"][0]["details"]["conv_algorithms"] == algos


@pytest.mark.parametrize("op,attrs,shape", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2]}, (1, 2, 9, 9)),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, (1, 2, 8, 8)),
    ("MaxPool", {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "dilations": [2, 2]},
     (2, 3, 7, 7)),
    ("MaxPool", {"kernel_shape": [3], "auto_pad": "SAME_UPPER", "strides": [2]}, (1, 2, 9)),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (1, 2, 6, 6)),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
     (1, 2, 6, 6)),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, (1, 1, 8, 8)),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1,
                     "pads": [1, 1, 1, 1], "count_include_pad": 1}, (1, 1, 7, 7)),
    ("GlobalAveragePool", {}, (2, 3, 5, 4)),
    ("GlobalMaxPool", {}, (2, 3, 5, 4)),
])
def test_pooling(op, attrs, shape):
    model, feeds = _one(op, [("x", _x(*shape))], attrs, opset=19)
    _run_both(model, feeds)


@pytest.mark.parametrize("size", [1, 3, 5])  # ORT takes odd sizes only
def test_lrn(size):
    model, feeds = _one("LRN", [("x", _x(2, 6, 4, 3))], {"size": size, "alpha": 0.01,
                                                          "beta": 0.6, "bias": 2.0})
    _run_both(model, feeds)


def test_batchnorm_layernorm_instancenorm():
    x = _x(2, 3, 4, 5)
    c = [("s", _x(3)), ("b", _x(3)), ("m", _x(3)), ("v", np.abs(_x(3)) + 0.5)]
    model, feeds = _one("BatchNormalization", [("x", x)], {"epsilon": 1e-3}, inits=c)
    _run_both(model, feeds)
    model, feeds = _one("InstanceNormalization", [("x", x)], {}, inits=c[:2])
    _run_both(model, feeds)
    for axis in (-1, -2, 1):
        shape = x.shape[axis:]
        model, feeds = _one("LayerNormalization", [("x", x)], {"axis": axis}, n_out=3,
                            inits=[("s", _x(*shape)), ("b", _x(*shape))])
        _run_both(model, feeds)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(11, 1), (11, -1), (13, 1), (13, -1), (13, 0)])
def test_softmax(op, opset, axis):
    model, feeds = _one(op, [("x", _x(2, 3, 4) * 5)], {"axis": axis}, opset=opset)
    _run_both(model, feeds)


@pytest.mark.parametrize("ta,tb,alpha,beta,cshape", [
    (0, 0, 1.0, 1.0, (5,)), (1, 0, 0.5, 2.0, (3, 5)), (0, 1, 1.0, 0.0, (1, 5)),
    (1, 1, 2.0, 1.0, (3, 1)),
])
def test_gemm(ta, tb, alpha, beta, cshape):
    a = _x(4, 3) if ta else _x(3, 4)
    b = _x(5, 4) if tb else _x(4, 5)
    model, feeds = _one("Gemm", [("a", a), ("b", b), ("c", _x(*cshape))],
                        {"transA": ta, "transB": tb, "alpha": alpha, "beta": beta})
    _run_both(model, feeds)


@pytest.mark.parametrize("ashape,bshape", [((3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
                                           ((4,), (2, 4, 3)), ((2, 3, 4), (4,))])
def test_matmul_broadcasting(ashape, bshape):
    model, feeds = _one("MatMul", [("a", _x(*ashape)), ("b", _x(*bshape))])
    _run_both(model, feeds)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Equal",
                                "Less", "Greater"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float16])
def test_binary_broadcasting(op, dtype):
    a = (_x(2, 3, 4) * 4).astype(dtype)
    b = (_x(3, 1) * 4).astype(dtype)
    if op in ("Div",) and dtype == np.int32:
        b[b == 0] = 3
    if op == "Pow":
        a = np.abs(a) + 1
        b = np.abs(b).astype(dtype) % 3
    model, feeds = _one(op, [("a", a), ("b", b)])
    _run_both(model, feeds, rtol=2e-3 if dtype == np.float16 else 1e-5,
              atol=1e-2 if dtype == np.float16 else 1e-5)


@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("LeakyRelu", {"alpha": 0.2}),
    ("Elu", {"alpha": 0.7}), ("Selu", {}), ("HardSigmoid", {}), ("HardSwish", {}),
    ("Softplus", {}), ("Softsign", {}), ("Erf", {}), ("Celu", {"alpha": 1.5}),
    ("ThresholdedRelu", {"alpha": 0.3}), ("Mish", {}), ("Gelu", {}),
    ("Gelu", {"approximate": "tanh"}), ("Exp", {}), ("Abs", {}), ("Neg", {}),
    ("Floor", {}), ("Round", {}), ("Sign", {}),
])
def test_activations(op, attrs):
    model, feeds = _one(op, [("x", _x(3, 7) * 3)], attrs, opset=20)
    _run_both(model, feeds)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
                                "ReduceSumSquare"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, -1], 0), (None, 1)])
def test_reductions_axes_input(op, axes, keepdims):
    x = _x(3, 4, 5)
    inputs = [("x", x)]
    inits = [("axes", np.asarray(axes, np.int64))] if axes is not None else []
    model, feeds = _one(op, inputs, {"keepdims": keepdims}, opset=18, inits=inits)
    _run_both(model, feeds)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_argmax_ties(op, last):
    x = np.round(_x(4, 6)).astype(np.float32)
    model, feeds = _one(op, [("x", x)], {"axis": 1, "select_last_index": last, "keepdims": 0})
    _run_both(model, feeds)


def test_shape_ops_chain():
    """Transpose, Gather with negative indices, Concat, Split (uneven), Slice with negative
    steps, Expand, Tile, Pad modes, Squeeze/Unsqueeze, Flatten, Cast, Where."""
    x = _x(2, 3, 4)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[2, 0, 1]),
        helper.make_node("Gather", ["t", "idx"], ["g"], axis=0),
        helper.make_node("Concat", ["g", "g"], ["c"], axis=1),
        helper.make_node("Split", ["c"], ["s0", "s1", "s2"], axis=1, num_outputs=3),
        helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["sl"]),
        helper.make_node("Expand", ["s2", "eshape"], ["ex"]),
        helper.make_node("Tile", ["sl", "reps"], ["ti"]),
        helper.make_node("Pad", ["ti", "pads"], ["pr"], mode="reflect"),
        helper.make_node("Pad", ["ti", "pads", "cv"], ["pc"], mode="constant"),
        helper.make_node("Pad", ["ti", "pads"], ["pe"], mode="edge"),
        helper.make_node("Unsqueeze", ["pe", "uax"], ["un"]),
        helper.make_node("Squeeze", ["un", "uax"], ["sq"]),
        helper.make_node("Flatten", ["sq"], ["fl"], axis=2),
        helper.make_node("Cast", ["fl"], ["ci"], to=TensorProto.INT32),
        helper.make_node("Greater", ["fl", "zero"], ["mask"]),
        helper.make_node("Where", ["mask", "fl", "zero"], ["wh"]),
    ]
    inits = [("idx", np.array([-1, 0], np.int64)), ("st", np.array([-1, 0], np.int64)),
             ("en", np.array([-100, 3], np.int64)), ("ax", np.array([2, 1], np.int64)),
             ("sp", np.array([-2, 2], np.int64)), ("eshape", np.array([2, 2, 1, 3], np.int64)),
             ("reps", np.array([1, 2, 2], np.int64)), ("pads", np.array([0, 1, 1, 0, 1, 1],
                                                                        np.int64)),
             ("cv", np.array(0.5, np.float32)), ("uax", np.array([0, 3], np.int64)),
             ("zero", np.array(0.0, np.float32))]
    outs = ["s0", "s1", "s2", "ex", "pr", "pc", "pe", "ci", "wh"]
    model = make_model(nodes, [("x", F, [2, 3, 4])], [(o, 0, None) for o in outs],
                       initializers=inits, opset=18)
    _run_both(model, {"x": x})


@pytest.mark.parametrize("mode,ctm,nearest", [
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"), ("nearest", "half_pixel", "ceil"),
    ("nearest", "tf_half_pixel_for_nn", "round_prefer_floor"),
    ("linear", "half_pixel", None), ("linear", "pytorch_half_pixel", None),
    ("linear", "align_corners", None), ("linear", "asymmetric", None),
    ("linear", "half_pixel_symmetric", None),
])
@pytest.mark.parametrize("how", ["up_scales", "down_sizes", "up_sizes_axes"])
def test_resize(mode, ctm, nearest, how):
    x = _x(1, 2, 5, 6)
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if nearest:
        attrs["nearest_mode"] = nearest
    if how == "up_scales":
        inits = [("roi", np.array([], np.float32)),
                 ("scales", np.array([1, 1, 1.6, 2.5], np.float32))]
    elif how == "down_sizes":
        inits = [("roi", np.array([], np.float32)), ("scales", np.array([], np.float32)),
                 ("sizes", np.array([1, 2, 3, 4], np.int64))]
    else:
        attrs["axes"] = [3, 2]
        inits = [("roi", np.array([], np.float32)), ("scales", np.array([], np.float32)),
                 ("sizes", np.array([9, 7], np.int64))]
    model, feeds = _one("Resize", [("x", x)], attrs, opset=19, inits=inits)
    _run_both(model, feeds)


def test_resize_opset10_and_uint8():
    x = (np.abs(_x(1, 1, 3, 4)) * 50).astype(np.uint8)
    model, feeds = _one("Resize", [("x", x)], {"mode": "nearest"}, opset=10,
                        inits=[("scales", np.array([1, 1, 2, 1.5], np.float32))])
    _run_both(model, feeds)


def test_cast_float_to_int_truncates():
    x = np.array([-2.7, -0.5, 0.5, 2.7, 100.9], np.float32)
    for to in (TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.BOOL,
               TensorProto.FLOAT16, TensorProto.DOUBLE):
        model, feeds = _one("Cast", [("x", np.abs(x) if to == TensorProto.UINT8 else x)],
                            {"to": to})
        _run_both(model, feeds)


def test_integer_div_and_mod_signs():
    a = np.array([7, -7, 7, -7, 0], np.int64)
    b = np.array([2, 2, -2, -2, 3], np.int64)
    model, feeds = _one("Div", [("a", a), ("b", b)])
    _run_both(model, feeds)
    for fmod in (0, 1):
        model, feeds = _one("Mod", [("a", a), ("b", b)], {"fmod": fmod})
        _run_both(model, feeds)
