"""Einsum, Det, random generators and string ops: onnx node cases, onnxruntime comparisons,
and (for the random ops) shape, dtype, statistics and seed reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP

from providers.cpu import opset
from tests.providers.cpu.node_case_runner import check_case, compare_with_ort, node_cases, run_model

RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
              "Multinomial", "Bernoulli"}
OPS = {"Einsum", "Det", "StringNormalizer", "StringConcat", "RegexFullMatch", "StringSplit"}
CASES = node_cases(OPS)
RANDOM_CASES = node_cases(RANDOM_OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


@pytest.mark.parametrize("case", RANDOM_CASES, ids=[c.name for c in RANDOM_CASES])
def test_random_node_case_shapes_and_types(case):
    # Random draws cannot match another generator's: check shape, dtype and value set.
    for inputs, expected in case.data_sets:
        got = run_model(case.model, list(inputs), fallback=False)
        for e, g in zip(expected, got):
            assert g.dtype == e.dtype and g.shape == e.shape
            if case.model.graph.node[0].op_type == "Bernoulli":
                assert set(np.unique(g).tolist()) <= {0, 1}


rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4)).astype(np.float32)
B = rng.standard_normal((4, 5)).astype(np.float32)
C = rng.standard_normal((2, 3, 4)).astype(np.float32)
D = rng.standard_normal((2, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("equation,operands", [
    ("ij,jk->ik", [A, B]), ("ij,jk", [A, B]), ("bij,bjk->bik", [C, D]),
    ("...ij,...jk->...ik", [C, D]), ("ii->i", [A[:3, :3]]), ("ii", [A[:3, :3]]),
    ("ij->", [A]), ("i,j->ij", [A[0], B[0]]), ("bij , bjk -> bik", [C, D]),
    ("abc,cd->abd", [C, B]), ("ijk->kji", [C]), ("BIJ,BJK->BIK", [C, D]),
    ("ij,jk,kl->il", [A, B, B.T.copy()]), ("...j,j", [C, A[0]]),
])
def test_einsum(equation, operands):
    compare_with_ort("Einsum", {f"x{i}": v for i, v in enumerate(operands)}, ["y"], 12,
                     rtol=1e-5, atol=1e-5, equation=equation)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_einsum_types(dtype):
    a = rng.integers(-5, 5, (3, 4)).astype(dtype)
    b = rng.integers(-5, 5, (4, 5)).astype(dtype)
    compare_with_ort("Einsum", {"a": a, "b": b}, ["y"], 12, equation="ij,jk->ik")


@pytest.mark.parametrize("x", [rng.standard_normal((2, 3, 4, 4)).astype(np.float32),
                               rng.standard_normal((4, 4)).astype(np.float32),
                               np.ones((3, 3), np.float32)], ids=["batched", "2d", "singular"])
def test_det(x):
    compare_with_ort("Det", {"x": x}, ["y"], 11, rtol=1e-4, atol=1e-5)


def test_det_float64_and_float16_keep_type():
    impl = opset.get("Det", "", 22)
    x = rng.standard_normal((2, 3, 3))
    for dtype in (np.float64, np.float16):
        got = impl.call([x.astype(dtype)], {}, None)[0]
        assert got.dtype == dtype and got.shape == (2,)
        np.testing.assert_allclose(got.astype(np.float64),
                                   np.linalg.det(x.astype(dtype).astype(np.float64)),
                                   rtol=1e-2)


# -------------------------------------------------------------------------------------------
# Random ops


def _call(op, inputs, attrs, seed_rng=None, version=22):
    impl = opset.get(op, "", version)
    ctx = opset.OpContext(node_name="n", op_type=op, domain="", opset=version, num_outputs=1,
                          rng=seed_rng or np.random.default_rng(123))
    return impl.call(inputs, impl.attrs_with_defaults(attrs), ctx)[0]


@pytest.mark.parametrize("op,inputs,attrs,dtype", [
    ("RandomNormal", [], {"shape": [200, 300], "mean": 2.0, "scale": 3.0}, np.float32),
    ("RandomNormal", [], {"shape": [200, 300], "dtype": TP.DOUBLE}, np.float64),
    ("RandomUniform", [], {"shape": [200, 300], "low": -1.0, "high": 3.0}, np.float32),
    ("RandomUniform", [], {"shape": [200, 300], "dtype": TP.FLOAT16}, np.float16),
    ("RandomNormalLike", [np.zeros((200, 300), np.float64)], {"mean": -1.0}, np.float64),
    ("RandomUniformLike", [np.zeros((200, 300), np.float32)], {"dtype": TP.DOUBLE},
     np.float64),
])
def test_random_distributions(op, inputs, attrs, dtype):
    y = _call(op, inputs, attrs)
    assert y.shape == (200, 300) and y.dtype == dtype
    y = y.astype(np.float64)
    if "Normal" in op:
        mean, scale = attrs.get("mean", 0.0), attrs.get("scale", 1.0)
        assert abs(y.mean() - mean) < 0.05 * scale and abs(y.std() - scale) < 0.05 * scale
    else:
        low, high = attrs.get("low", 0.0), attrs.get("high", 1.0)
        assert y.min() >= low and y.max() <= high
        assert abs(y.mean() - (low + high) / 2) < 0.02 * (high - low)


@pytest.mark.parametrize("op,inputs,attrs", [
    ("RandomNormal", [], {"shape": [5, 6]}),
    ("RandomUniform", [], {"shape": [5, 6]}),
    ("RandomNormalLike", [np.zeros((5, 6), np.float32)], {}),
    ("RandomUniformLike", [np.zeros((5, 6), np.float32)], {}),
    ("Multinomial", [np.zeros((3, 10), np.float32)], {"sample_size": 8}),
    ("Bernoulli", [np.full((5, 6), 0.5, np.float32)], {}),
])
def test_random_seed_reproducibility(op, inputs, attrs):
    a = _call(op, inputs, dict(attrs, seed=3.0), np.random.default_rng(1))
    b = _call(op, inputs, dict(attrs, seed=3.0), np.random.default_rng(2))
    c = _call(op, inputs, dict(attrs, seed=4.0), np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Without a seed the session generator advances: two draws differ.
    session = np.random.default_rng(5)
    assert not np.array_equal(_call(op, inputs, attrs, session), _call(op, inputs, attrs, session))


def test_multinomial_frequencies_and_type():
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0 + 1e-9]], np.float32))
    y = _call("Multinomial", [logits], {"sample_size": 20000}, version=7)
    assert y.shape == (2, 20000) and y.dtype == np.int32
    freq0 = np.bincount(y[0], minlength=3) / 20000
    np.testing.assert_allclose(freq0, [0.1, 0.2, 0.7], atol=0.02)
    assert (y[1] != 2).mean() > 0.999
    y64 = _call("Multinomial", [logits], {"sample_size": 4, "dtype": TP.INT64}, version=7)
    assert y64.dtype == np.int64


@pytest.mark.parametrize("dtype,expected", [(None, np.float32), (TP.BOOL, np.bool_),
                                            (TP.INT32, np.int32), (TP.DOUBLE, np.float64)])
def test_bernoulli(dtype, expected):
    p = np.linspace(0, 1, 11, dtype=np.float32)
    p = np.broadcast_to(p, (5000, 11)).copy()
    attrs = {} if dtype is None else {"dtype": dtype}
    y = _call("Bernoulli", [p], attrs, version=15)
    assert y.dtype == expected and y.shape == p.shape
    freq = y.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(freq, p[0], atol=0.03)
    assert freq[0] == 0 and freq[-1] == 1


# -------------------------------------------------------------------------------------------
# String ops

WORDS = np.array(["Monday", "tuesday", "WEDNESDAY", "monday", "Friday", "ÉCOLE", "straße"],
                 dtype=object)


@pytest.mark.parametrize("action", ["NONE", "LOWER", "UPPER"])
@pytest.mark.parametrize("case_sensitive", [0, 1])
@pytest.mark.parametrize("stopwords", [None, ["monday", "friday"], ["Monday", "école"]])
def test_string_normalizer(action, case_sensitive, stopwords):
    attrs = {"case_change_action": action, "is_case_sensitive": case_sensitive,
             # onnxruntime's default en_US locale may be missing on the test machine
             "locale": "C.UTF-8"}
    if stopwords:
        attrs["stopwords"] = stopwords
    compare_with_ort("StringNormalizer", {"x": WORDS}, ["y"], 10, **attrs)
    compare_with_ort("StringNormalizer", {"x": WORDS[None]}, ["y"], 10, **attrs)


def test_string_normalizer_everything_removed():
    for x in (WORDS[[0, 3]].copy(), WORDS[None, [0, 3]].copy()):
        compare_with_ort("StringNormalizer", {"x": x}, ["y"], 10, stopwords=["monday"],
                         locale="C.UTF-8")


def test_string_concat():
    compare_with_ort("StringConcat", {"x": np.array([["a", "bb"], ["c", ""]], dtype=object),
                                      "y": np.array(["x", "yy"], dtype=object)}, ["z"], 20)


@pytest.mark.parametrize("pattern", [r"\d+", r"[a-z]+@[a-z]+\.com", r"(a|b)*c", r"\w+\s\w+",
                                     r".*", r"^abc$", r"\d{2,3}", r"(?i)abc"])
def test_regex_full_match(pattern):
    x = np.array(["123", "abc", "a@b.com", "aabc", "hello world", "", "ABC", "12"], dtype=object)
    compare_with_ort("RegexFullMatch", {"x": x}, ["y"], 20, pattern=pattern)


SPLIT_X = np.array([["a,b,,c", ",x,", ""], ["  a  b ", "no", "a,b,c,d,e"]], dtype=object)


@pytest.mark.parametrize("delimiter", [None, "", ",", ", ", "b"])
@pytest.mark.parametrize("maxsplit", [None, 0, 1, 2, 10])
def test_string_split(delimiter, maxsplit):
    attrs = {}
    if delimiter is not None:
        attrs["delimiter"] = delimiter
    if maxsplit is not None:
        attrs["maxsplit"] = maxsplit
    compare_with_ort("StringSplit", {"x": SPLIT_X}, ["y", "z"], 20, **attrs)


def test_string_split_empty_input():
    compare_with_ort("StringSplit", {"x": np.array([], dtype=object).reshape(0, 2)},
                     ["y", "z"], 20)
