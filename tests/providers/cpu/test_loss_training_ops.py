"""Loss, training, text and assorted newer ops (NegativeLogLikelihoodLoss,
SoftmaxCrossEntropyLoss, Adagrad/Adam/Momentum, TfIdfVectorizer, BitCast, Cast to FLOAT8E8M0,
CumProd, SequenceMap, DeformConv, TensorScatter): onnx node cases, onnxruntime comparisons
where onnxruntime has the op, and the onnx reference evaluator for the training ops
(onnxruntime's inference build lacks them)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from providers.cpu.ops.cast import cast_array
from tests.providers.cpu.node_case_runner import (
    _all_cases,
    assert_value_close,
    check_case,
    compare_with_ort,
    node_cases,
    run_model,
)

TRAINING = "ai.onnx.preview.training"
OPS = {"NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "TfIdfVectorizer", "BitCast",
       "CumProd", "SequenceMap", "DeformConv", "TensorScatter"}
CASES = [c for c in node_cases(OPS) if all(n.op_type in OPS for n in c.model.graph.node)]
CASES += [c for c in _all_cases() if c.model is not None
          and any(n.domain == TRAINING and n.op_type in ("Adagrad", "Adam", "Momentum")
                  for n in c.model.graph.node)]
CASES += [c for c in _all_cases() if c.name.startswith("test_cast_e8m0")]

rng = np.random.default_rng(0)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


def test_cases_found():
    names = {c.name for c in CASES}
    for prefix in ("test_nllloss", "test_sce", "test_adam", "test_adagrad", "test_momentum",
                   "test_tfidfvectorizer", "test_bitcast", "test_cumprod", "test_sequence_map",
                   "test_basic_deform_conv", "test_tensorscatter", "test_cast_e8m0"):
        assert any(n.startswith(prefix) for n in names), prefix


# --------------------------------------------------------------------------------------------
# Losses


def _loss_inputs(shape, dtype, weighted, ignore_index):
    n, c = shape[:2]
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, c, (n,) + shape[2:]).astype(np.int64)
    if ignore_index is not None:
        t.reshape(-1)[::3] = ignore_index
    w = rng.random(c).astype(dtype) + np.asarray(0.1, dtype) if weighted else None
    return x, t, w


LOSS_SHAPES = [(4, 3), (2, 5, 3), (2, 3, 2, 2)]


@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 1, -1])
def test_nll_loss(shape, reduction, weighted, ignore_index):
    x, t, w = _loss_inputs(shape, np.float32, weighted, ignore_index)
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    compare_with_ort("NegativeLogLikelihoodLoss", {"x": x, "t": t, "w": w}, ["y"], 22,
                     rtol=1e-5, atol=1e-6, **attrs)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float16, 2e-3)])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_nll_loss_dtypes(dtype, rtol, reduction):
    x, t, w = _loss_inputs((3, 4, 2), dtype, True, 2)
    compare_with_ort("NegativeLogLikelihoodLoss", {"x": x, "t": t, "w": w}, ["y"], 13,
                     rtol=rtol, atol=rtol, reduction=reduction, ignore_index=2)


@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 2, -5])
def test_softmax_cross_entropy_loss(shape, reduction, weighted, ignore_index):
    x, t, w = _loss_inputs(shape, np.float32, weighted, ignore_index)
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    compare_with_ort("SoftmaxCrossEntropyLoss", {"x": x, "t": t, "w": w}, ["y", "lp"], 13,
                     rtol=1e-5, atol=1e-6, **attrs)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float16, 3e-3)])
def test_softmax_cross_entropy_loss_dtypes(dtype, rtol):
    x, t, w = _loss_inputs((3, 4, 2), dtype, True, None)
    compare_with_ort("SoftmaxCrossEntropyLoss", {"x": x, "t": t, "w": w}, ["y", "lp"], 13,
                     rtol=rtol, atol=rtol, reduction="mean")


def test_softmax_cross_entropy_loss_one_output():
    x, t, _ = _loss_inputs((4, 6), np.float32, False, None)
    compare_with_ort("SoftmaxCrossEntropyLoss", {"x": x, "t": t}, ["y"], 13, reduction="sum")


def test_nll_loss_bad_target():
    from providers.cpu.ops.loss import negative_log_likelihood_loss

    with pytest.raises(IndexError):
        negative_log_likelihood_loss(np.zeros((2, 3), np.float32), np.array([0, 3]))


# --------------------------------------------------------------------------------------------
# Training ops: against onnx's reference evaluator


def _training_model(op, n_tensors, n_groups, **attrs):
    names = ["r", "t"] + [f"in{k}_{i}" for k in range(n_groups) for i in range(n_tensors)]
    # Every state group but the gradients comes back updated: X, then the optimizer states.
    outs = [f"out{k}_{i}" for k in range(n_groups - 1) for i in range(n_tensors)]
    node = helper.make_node(op, names, outs, domain=TRAINING, **attrs)
    ins = [helper.make_tensor_value_info("r", TensorProto.FLOAT, []),
           helper.make_tensor_value_info("t", TensorProto.INT64, [])]
    ins += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names[2:]]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
    graph = helper.make_graph([node], "train", ins, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid(TRAINING, 1)])


@pytest.mark.parametrize("op,groups,attrs", [
    ("Adagrad", 3, {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 0.01}),
    ("Adagrad", 3, {}),
    ("Adam", 4, {"alpha": 0.8, "beta": 0.9, "epsilon": 1e-4, "norm_coefficient": 0.02,
                 "norm_coefficient_post": 0.05}),
    ("Adam", 4, {}),
    ("Momentum", 3, {"alpha": 0.9, "beta": 0.5, "mode": "standard", "norm_coefficient": 0.1}),
    ("Momentum", 3, {"alpha": 0.7, "beta": 0.4, "mode": "nesterov", "norm_coefficient": 0.0}),
])
@pytest.mark.parametrize("n_tensors", [1, 2])
@pytest.mark.parametrize("step", [0, 3])
def test_training_op(op, groups, attrs, n_tensors, step):
    from onnx.reference import ReferenceEvaluator

    model = _training_model(op, n_tensors, groups, **attrs)
    feeds = {"r": np.array(0.1, np.float32), "t": np.array(step, np.int64)}
    for k in range(groups):
        for i in range(n_tensors):
            v = rng.standard_normal((3, i + 2)).astype(np.float32)
            feeds[f"in{k}_{i}"] = np.abs(v) if k >= 2 and op != "Momentum" else v
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = run_model(model, feeds, fallback=False)
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert_value_close(np.asarray(e, np.float32), g, 1e-5, 1e-6, f"{op} output {i}")


# --------------------------------------------------------------------------------------------
# TfIdfVectorizer


TFIDF_POOL = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7]     # 4 unigrams, then 3 bigrams


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("min_n,max_n", [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("skip", [0, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_tfidf_int(mode, min_n, max_n, skip, weighted):
    x = rng.integers(2, 9, (3, 12)).astype(np.int64)
    attrs = {"mode": mode, "min_gram_length": min_n, "max_gram_length": max_n,
             "max_skip_count": skip, "ngram_counts": [0, 4], "ngram_indexes": list(range(7)),
             "pool_int64s": TFIDF_POOL}
    if weighted:
        attrs["weights"] = [float(v) for v in rng.random(7) + 0.5]
    compare_with_ort("TfIdfVectorizer", {"x": x}, ["y"], 9, **attrs)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_tfidf_1d_permuted_indexes(dtype):
    x = rng.integers(2, 9, 20).astype(dtype)
    compare_with_ort("TfIdfVectorizer", {"x": x}, ["y"], 9, mode="TFIDF", min_gram_length=1,
                     max_gram_length=2, max_skip_count=1, ngram_counts=[0, 4],
                     ngram_indexes=[6, 0, 5, 1, 4, 2, 3], pool_int64s=TFIDF_POOL,
                     weights=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])


def test_tfidf_strings():
    words = np.array(["a", "b", "c", "d", "e"], dtype=object)
    x = words[rng.integers(0, 5, (2, 9))]
    compare_with_ort("TfIdfVectorizer", {"x": x}, ["y"], 9, mode="TF", min_gram_length=1,
                     max_gram_length=3, max_skip_count=1, ngram_counts=[0, 2, 4],
                     ngram_indexes=[0, 1, 2, 3, 4], pool_strings=["a", "c", "a", "b", "b",
                                                                  "c", "d"])


# --------------------------------------------------------------------------------------------
# BitCast, Cast to FLOAT8E8M0


@pytest.mark.parametrize("src,to", [
    (np.float32, TensorProto.INT32), (np.int32, TensorProto.FLOAT),
    (np.float64, TensorProto.UINT64), (np.float16, TensorProto.INT16),
    (np.uint8, TensorProto.INT8), (np.int64, TensorProto.DOUBLE),
    (np.uint16, TensorProto.FLOAT16),
])
def test_bitcast(src, to):
    if np.dtype(src).kind == "f":
        x = rng.standard_normal((2, 3)).astype(src)
    else:
        info = np.iinfo(src)
        x = rng.integers(info.min, info.max, (2, 3), dtype=src, endpoint=True)
        if to == TensorProto.FLOAT16:
            x &= np.uint16(0x7BFF)      # finite halves only (NaN payloads compare unequal)
        if to == TensorProto.DOUBLE:
            x &= np.int64(0x7FEFFFFFFFFFFFFF)
    if to == TensorProto.FLOAT and src == np.int32:
        x &= np.int32(0x7F7FFFFF)
    compare_with_ort("BitCast", {"x": x}, ["y"], 26, rtol=0, atol=0, to=to)


def test_bitcast_bool_and_sub_byte():
    """Cases onnxruntime's BitCast does not take: bool bytes, 4-bit types."""
    import ml_dtypes

    from providers.cpu.ops.cast import bit_cast

    x = np.array([True, False, True])
    np.testing.assert_array_equal(bit_cast(x, to=TensorProto.UINT8), x.astype(np.uint8))
    y = np.array([-1, 7, -8, 0], dtype=ml_dtypes.int4)
    got = bit_cast(y, to=TensorProto.UINT4)
    assert got.dtype == ml_dtypes.uint4
    np.testing.assert_array_equal(got.astype(np.int64), [15, 7, 8, 0])
    back = bit_cast(got, to=TensorProto.INT4)
    np.testing.assert_array_equal(back.astype(np.int64), y.astype(np.int64))


def test_bitcast_width_mismatch():
    from providers.cpu.ops.cast import bit_cast

    with pytest.raises(ValueError):
        bit_cast(np.zeros(3, np.float32), to=TensorProto.INT64)


@pytest.mark.parametrize("mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_e8m0_normal_range(mode, saturate):
    """Positive normal float32 values, where onnx's to_float8e8m0 follows the spec."""
    x = np.concatenate([np.exp2(rng.uniform(-125, 126, 200)),
                        np.exp2(np.arange(-126, 127.0)),
                        1.5 * np.exp2(np.arange(-126, 126.0))]).astype(np.float32)
    got = cast_array(x, TensorProto.FLOAT8E8M0, saturate, mode)
    want = numpy_helper.to_float8e8m0(x, bool(saturate), mode)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_cast_e8m0_special_values():
    """The spec's table: saturating, 0 and tiny values give the smallest code and Inf or huge
    values the largest; not saturating they give NaN; NaN stays NaN."""
    x = np.array([0.0, 1e-40, np.inf, np.nan, 3e38], np.float32)
    sat = cast_array(x, TensorProto.FLOAT8E8M0, 1, "up").view(np.uint8)
    np.testing.assert_array_equal(sat, [0, 0, 254, 255, 254])
    non = cast_array(x, TensorProto.FLOAT8E8M0, 0, "nearest").view(np.uint8)
    np.testing.assert_array_equal(non, [255] * 5)


# --------------------------------------------------------------------------------------------
# CumProd


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumprod(dtype, axis, exclusive, reverse):
    x = rng.integers(-3, 4, (3, 4, 2)).astype(dtype)
    if dtype in (np.float32, np.float64):
        x = x + rng.random(x.shape).astype(dtype)
    compare_with_ort("CumProd", {"x": x, "a": np.array(axis, np.int64)}, ["y"], 26,
                     exclusive=exclusive, reverse=reverse)


# --------------------------------------------------------------------------------------------
# TensorScatter


@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis", [-2, 1, 2])
@pytest.mark.parametrize("with_indices", [True, False])
def test_tensor_scatter(mode, axis, with_indices):
    shape = [2, 3, 6, 4]
    max_seq = shape[axis]
    upd_shape = list(shape)
    upd_shape[axis] = 2
    cache = rng.standard_normal(shape).astype(np.float32)
    upd = rng.standard_normal(upd_shape).astype(np.float32)
    if with_indices:
        high = max_seq if mode == "circular" else max_seq - 1
        idx = rng.integers(0, high, 2).astype(np.int64)
    else:
        idx = None
    compare_with_ort("TensorScatter", {"c": cache, "u": upd, "w": idx}, ["y"], 24, mode=mode,
                     axis=axis)


# --------------------------------------------------------------------------------------------
# DeformConv


# (input channels, output channels, kernel, group, offset_group, pads, strides, dilations)
DEFORM_CONFIGS = [
    (2, 3, (2, 2), 1, 1, [0, 0, 0, 0], [1, 1], [1, 1]),
    (4, 4, (3, 3), 2, 2, [1, 1, 1, 1], [1, 1], [1, 1]),
    (4, 2, (3, 2), 1, 4, [0, 0, 0, 0], [2, 1], [1, 2]),
    (2, 2, (2, 3), 2, 1, [0, 1, 2, 0], [1, 2], [1, 1]),
]


@pytest.mark.parametrize("cfg", DEFORM_CONFIGS)
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_deform_conv(cfg, with_mask, with_bias):
    c, m, k, group, og, pads, strides, dil = cfg
    n, h, w = 2, 5, 6
    out = [(s + pads[j] + pads[j + 2] - (k[j] - 1) * dil[j] - 1) // strides[j] + 1
           for j, s in enumerate((h, w))]
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((m, c // group, *k)).astype(np.float32)
    # Offsets of up to two pixels, some of them pointing outside the input.
    off = (rng.random((n, og * k[0] * k[1] * 2, *out)) * 4 - 2).astype(np.float32)
    mask = rng.random((n, og * k[0] * k[1], *out)).astype(np.float32) if with_mask else None
    b = rng.standard_normal(m).astype(np.float32) if with_bias else None
    compare_with_ort("DeformConv", {"x": x, "w": wt, "o": off, "b": b, "mask": mask}, ["y"],
                     22, rtol=1e-4, atol=1e-5, group=group, offset_group=og,
                     kernel_shape=list(k), pads=pads, strides=strides, dilations=dil)


def test_deform_conv_zero_offsets_is_conv():
    """With zero offsets and no mask, DeformConv is Conv (1-D here, which onnxruntime's
    DeformConv does not take)."""
    from providers.cpu.ops.conv import conv, deform_conv

    x = rng.standard_normal((2, 4, 9)).astype(np.float32)
    wt = rng.standard_normal((6, 2, 3)).astype(np.float32)
    off = np.zeros((2, 3, 4), np.float32)
    got = deform_conv(x, wt, off, group=2, pads=[1, 0], strides=[2], dilations=[1])
    want = conv(x, wt, group=2, pads=[1, 0], strides=[2], dilations=[1])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# SequenceMap


def test_sequence_map_with_ort():
    body = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Shape", ["a"], ["sh"])],
        "body",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("sh", TensorProto.INT64, None)])
    seq_type = helper.make_tensor_sequence_value_info
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x0", "x1", "x2"], ["seq"]),
         helper.make_node("SequenceMap", ["seq", "bias"], ["out_s", "out_sh"], body=body)],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
         for n in ("x0", "x1", "x2", "bias")],
        [seq_type("out_s", TensorProto.FLOAT, None), seq_type("out_sh", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"x0": rng.standard_normal((2, 3)).astype(np.float32),
             "x1": rng.standard_normal((4, 3)).astype(np.float32),
             "x2": rng.standard_normal((1, 3)).astype(np.float32),
             "bias": rng.standard_normal(3).astype(np.float32)}
    from tests.providers.cpu.node_case_runner import compare_model_with_ort

    compare_model_with_ort(model, feeds, fallback=False)
