"""ai.onnx.ml ops: the onnx node cases and single-node models compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper

from providers.cpu import opset
from runtime import ir
from tests.providers.cpu.node_case_runner import (
    _all_cases,
    assert_value_close,
    check_case,
    ort_run,
)

ML = "ai.onnx.ml"


def _ml_cases():
    out = []
    for case in _all_cases():
        if case.model is None or "_expanded" in case.name:
            continue
        if any(n.domain == ML for n in case.model.graph.node):
            out.append(case)
    return out


CASES = _ml_cases()


def test_ml_cases_found():
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# --------------------------------------------------------------------------------------------
# Single-node models run on onnxruntime and on the registered implementation


def _tensor_type(elem):
    return helper.make_tensor_type_proto(elem, None)


def _map_type(key_elem, value_elem):
    return helper.make_map_type_proto(key_elem, _tensor_type(value_elem))


def _value_type(v):
    if isinstance(v, dict):
        k = next(iter(v))
        key = TP.STRING if isinstance(k, str) else TP.INT64
        val = next(iter(v.values()))
        if isinstance(val, str):
            value = TP.STRING
        elif isinstance(val, (int, np.integer)):
            value = TP.INT64
        elif isinstance(val, np.float64):
            value = TP.DOUBLE
        else:
            value = TP.FLOAT
        return _map_type(key, value)
    arr = np.asarray(v)
    return helper.make_tensor_type_proto(ir.numpy_dtype_to_onnx(arr.dtype), arr.shape)


def _model(op, inputs, out_types, version, attrs):
    node = helper.make_node(op, list(inputs), list(out_types), domain=ML, **attrs)
    g_in = [helper.make_value_info(n, _value_type(v)) for n, v in inputs.items()]
    g_out = [helper.make_value_info(n, t if isinstance(t, onnx.TypeProto) else _tensor_type(t))
             for n, t in out_types.items()]
    graph = helper.make_graph([node], "ml", g_in, g_out)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(ML, version),
                                                    helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def ferry_run(op, inputs, attrs, version, n_out):
    impl = opset.get(op, ML, version)
    assert impl is not None, f"{op} v{version} not registered"
    conv = {k: ir.attribute_value(helper.make_attribute(k, v)) for k, v in attrs.items()}
    ctx = opset.OpContext(node_name="n", op_type=op, domain=ML, opset=version,
                          num_outputs=n_out)
    return impl.call(list(inputs.values()), impl.attrs_with_defaults(conv), ctx)


def ort_run_any(model, feeds):
    """onnxruntime on feeds that may include maps (dicts)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _compare(expected, got, rtol, atol, where):
    if isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert isinstance(got, list) and len(got) == len(expected), where
        for e, g in zip(expected, got):
            assert list(e) == list(g), f"{where}: keys {list(g)} != {list(e)}"
            np.testing.assert_allclose(list(g.values()), list(e.values()), rtol=rtol,
                                       atol=atol, err_msg=where)
        return
    exp = np.asarray(expected)
    if exp.dtype.kind in "US":
        exp = exp.astype(object)
    assert_value_close(exp, got, rtol, atol, where)


def check(op, inputs, out_types, version=1, rtol=1e-5, atol=1e-6, **attrs):
    """Run ``op`` on onnxruntime and on ferry's numpy implementation; compare all outputs."""
    model = _model(op, inputs, out_types, version, attrs)
    expected = ort_run_any(model, dict(inputs))
    got = ferry_run(op, inputs, attrs, version, len(out_types))
    assert len(got) >= len(expected)
    for i, name in enumerate(out_types):
        _compare(expected[i], got[i], rtol, atol, f"{op} {name}")
    return got


rng = np.random.default_rng(7)
POSTS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]


def tensor(arr):
    return onnx.numpy_helper.from_array(np.asarray(arr))


def feats(n, f, scale=1.0):
    return (rng.standard_normal((n, f)) * scale).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Linear models


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("classes", [1, 2, 3])
@pytest.mark.parametrize("strings", [False, True])
def test_linear_classifier(post, classes, strings):
    f = 4
    ntarg = 1 if classes == 1 else classes
    labels = 2 if classes == 1 else classes
    x = feats(6, f)
    if post == "PROBIT":
        x = x * 0.05  # PROBIT needs scores in (0, 1)
    attrs = dict(coefficients=list(rng.standard_normal(ntarg * f).astype(np.float32)),
                 intercepts=list(rng.uniform(0.1, 0.4, ntarg).astype(np.float32)),
                 post_transform=post)
    if post == "PROBIT":
        attrs["intercepts"] = [0.5] * ntarg
    if strings:
        attrs["classlabels_strings"] = [f"c{i}" for i in range(labels)]
    else:
        attrs["classlabels_ints"] = [10 + i for i in range(labels)]
    ytype = TP.STRING if strings else TP.INT64
    if classes == 1 and post == "PROBIT":
        # onnxruntime writes N probits at the start of the [N, 2] output, the rest is unset.
        model = _model("LinearClassifier", {"X": x}, {"Y": ytype, "Z": TP.FLOAT}, 1, attrs)
        exp = ort_run(model, {"X": x})
        got = ferry_run("LinearClassifier", {"X": x}, attrs, 1, 2)
        _compare(exp[0], got[0], 0, 0, "labels")
        np.testing.assert_allclose(got[1].ravel()[:6], exp[1].ravel()[:6], rtol=1e-4)
        return
    check("LinearClassifier", {"X": x}, {"Y": ytype, "Z": TP.FLOAT}, rtol=1e-4, atol=1e-5,
          **attrs)


def test_linear_classifier_single_score_needs_two_labels():
    with pytest.raises(ValueError):
        ferry_run("LinearClassifier", {"X": feats(5, 3)},
                  dict(coefficients=[0.5, -1.0, 2.0], intercepts=[0.1],
                       classlabels_ints=[1, 2, 3]), 1, 2)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_linear_classifier_input_types(dtype):
    x = (rng.standard_normal((4, 3)) * 5).astype(dtype)
    check("LinearClassifier", {"X": x}, {"Y": TP.INT64, "Z": TP.FLOAT}, rtol=1e-5, atol=1e-5,
          coefficients=[0.5, -1.0, 2.0, 1.0, 0.25, -0.5], intercepts=[0.1, -0.2],
          classlabels_ints=[0, 1], post_transform="SOFTMAX")


def test_linear_classifier_1d_input():
    check("LinearClassifier", {"X": feats(1, 3)[0]}, {"Y": TP.INT64, "Z": TP.FLOAT},
          coefficients=[0.5, -1.0, 2.0, 1.0, 0.25, -0.5], intercepts=[0.1, -0.2],
          classlabels_ints=[0, 1])


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("targets", [1, 3])
def test_linear_regressor(post, targets):
    x = feats(5, 4) * (0.05 if post == "PROBIT" else 1)
    attrs = dict(coefficients=list(rng.standard_normal(targets * 4).astype(np.float32)),
                 intercepts=[0.5] * targets, targets=targets, post_transform=post)
    check("LinearRegressor", {"X": x}, {"Y": TP.FLOAT}, rtol=1e-4, atol=1e-5, **attrs)


def test_linear_regressor_no_intercepts():
    check("LinearRegressor", {"X": feats(3, 2)}, {"Y": TP.FLOAT}, coefficients=[1.0, -2.0])


# --------------------------------------------------------------------------------------------
# SVMs


def _svc_attrs(k, per_class, f, kernel, proba, strings, post):
    n_sv = sum(per_class)
    attrs = dict(
        coefficients=list(rng.standard_normal((k - 1) * n_sv).astype(np.float32)),
        support_vectors=list(rng.standard_normal(n_sv * f).astype(np.float32)),
        vectors_per_class=per_class,
        rho=list(rng.standard_normal(k * (k - 1) // 2).astype(np.float32) * 0.1),
        kernel_type=kernel, kernel_params=[0.3, 0.2, 3.0], post_transform=post)
    if proba:
        attrs["prob_a"] = list(rng.uniform(-2, -0.5, k * (k - 1) // 2).astype(np.float32))
        attrs["prob_b"] = list(rng.uniform(-0.2, 0.2, k * (k - 1) // 2).astype(np.float32))
    if strings:
        attrs["classlabels_strings"] = [f"s{i}" for i in range(k)]
    else:
        attrs["classlabels_ints"] = list(range(5, 5 + k))
    return attrs


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
@pytest.mark.parametrize("k,per_class", [(2, [2, 3]), (3, [2, 1, 3])])
@pytest.mark.parametrize("proba", [False, True])
def test_svm_classifier_svc(kernel, k, per_class, proba):
    attrs = _svc_attrs(k, per_class, 3, kernel, proba, False, "NONE")
    check("SVMClassifier", {"X": feats(7, 3)}, {"Y": TP.INT64, "Z": TP.FLOAT}, rtol=1e-4,
          atol=1e-5, **attrs)


@pytest.mark.parametrize("post", ["LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("k,per_class", [(2, [2, 2]), (4, [1, 2, 1, 2])])
@pytest.mark.parametrize("proba", [False, True])
def test_svm_classifier_post(post, k, per_class, proba):
    attrs = _svc_attrs(k, per_class, 3, "RBF", proba, True, post)
    check("SVMClassifier", {"X": feats(6, 3)}, {"Y": TP.STRING, "Z": TP.FLOAT}, rtol=1e-4,
          atol=1e-5, **attrs)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX"])
def test_svm_classifier_linear(k, positive, post):
    coef = rng.standard_normal(k * 3).astype(np.float32)
    if positive:
        coef = np.abs(coef) * 0.3
    check("SVMClassifier", {"X": feats(8, 3)}, {"Y": TP.INT64, "Z": TP.FLOAT}, rtol=1e-5,
          atol=1e-6, coefficients=list(coef), rho=[0.1], classlabels_ints=list(range(k)),
          post_transform=post, kernel_params=[0.0, 0.0, 0.0])


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
@pytest.mark.parametrize("one_class", [0, 1])
def test_svm_regressor(kernel, one_class):
    n_sv, f = 4, 3
    check("SVMRegressor", {"X": feats(6, f)}, {"Y": TP.FLOAT}, rtol=1e-4, atol=1e-5,
          coefficients=list(rng.standard_normal(n_sv).astype(np.float32)),
          support_vectors=list(rng.standard_normal(n_sv * f).astype(np.float32)),
          n_supports=n_sv, rho=[0.25], kernel_type=kernel, kernel_params=[0.4, 0.1, 2.0],
          one_class=one_class)


def test_svm_regressor_linear():
    check("SVMRegressor", {"X": feats(4, 3)}, {"Y": TP.FLOAT}, coefficients=[0.1, 0.2, -0.3],
          rho=[0.5], n_supports=0, kernel_params=[0.0, 0.0, 0.0])


# --------------------------------------------------------------------------------------------
# Tree ensembles


def random_forest(n_trees, n_features, depth, modes=("BRANCH_LEQ",), n_targets=1,
                  missing=False, leaf_targets=1, treeid_offset=0):
    """Random trees in the Regressor/Classifier encoding; every leaf gets ``leaf_targets``
    weights on random targets. Node ids are shuffled within a tree."""
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_modes", "nodes_featureids",
                         "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                         "nodes_missing_value_tracks_true", "t_treeids", "t_nodeids", "t_ids",
                         "t_weights")}
    for t in range(n_trees):
        tid = t + treeid_offset
        n_nodes = 2 ** (depth + 1) - 1
        ids = rng.permutation(n_nodes) + 0
        for i in range(n_nodes):
            a["nodes_treeids"].append(tid)
            a["nodes_nodeids"].append(int(ids[i]))
            if i >= 2 ** depth - 1:
                a["nodes_modes"].append("LEAF")
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["nodes_missing_value_tracks_true"].append(0)
                for _ in range(leaf_targets):
                    a["t_treeids"].append(tid)
                    a["t_nodeids"].append(int(ids[i]))
                    a["t_ids"].append(int(rng.integers(0, n_targets)))
                    a["t_weights"].append(float(np.float32(rng.standard_normal())))
            else:
                a["nodes_modes"].append(str(rng.choice(modes)))
                a["nodes_featureids"].append(int(rng.integers(0, n_features)))
                a["nodes_values"].append(float(np.float32(rng.standard_normal() * 0.7)))
                a["nodes_truenodeids"].append(int(ids[2 * i + 1]))
                a["nodes_falsenodeids"].append(int(ids[2 * i + 2]))
                a["nodes_missing_value_tracks_true"].append(int(missing and rng.random() < 0.5))
    return a


def regressor_attrs(forest, n_targets, **extra):
    attrs = {k: v for k, v in forest.items() if not k.startswith("t_")}
    attrs.update(target_treeids=forest["t_treeids"], target_nodeids=forest["t_nodeids"],
                 target_ids=forest["t_ids"], target_weights=forest["t_weights"],
                 n_targets=n_targets)
    attrs.update(extra)
    return attrs


def classifier_attrs(forest, **extra):
    attrs = {k: v for k, v in forest.items() if not k.startswith("t_")}
    attrs.update(class_treeids=forest["t_treeids"], class_nodeids=forest["t_nodeids"],
                 class_ids=forest["t_ids"], class_weights=forest["t_weights"])
    attrs.update(extra)
    return attrs


def tree_input(n, f, nan=False, dtype=np.float32):
    x = rng.standard_normal((n, f)).astype(dtype)
    if nan:
        x[rng.random((n, f)) < 0.2] = np.nan
    return x


ALL_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")


@pytest.mark.parametrize("agg", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("modes", [("BRANCH_LEQ",), ALL_MODES], ids=["leq", "mixed"])
def test_tree_regressor(agg, n_targets, modes):
    forest = random_forest(5, 4, 3, modes, n_targets, missing=True)
    x = tree_input(20, 4, nan=True)
    x[:3, :] = np.asarray(forest["nodes_values"][:4], np.float32)  # hit thresholds exactly
    attrs = regressor_attrs(forest, n_targets, aggregate_function=agg,
                            base_values=list(rng.standard_normal(n_targets).astype(np.float32)))
    check("TreeEnsembleRegressor", {"X": x}, {"Y": TP.FLOAT}, version=3, **attrs)


@pytest.mark.parametrize("post", POSTS)
def test_tree_regressor_post(post):
    n_targets = 1 if post == "PROBIT" else 3
    forest = random_forest(4, 3, 2, ALL_MODES, n_targets)
    forest["t_weights"] = [w * 0.05 for w in forest["t_weights"]]
    attrs = regressor_attrs(forest, n_targets, post_transform=post,
                            base_values=[0.5] * n_targets)
    check("TreeEnsembleRegressor", {"X": tree_input(10, 3)}, {"Y": TP.FLOAT}, version=3,
          rtol=1e-5, atol=1e-6, **attrs)


def test_tree_regressor_untouched_targets_and_multiple_weights():
    # Targets no leaf scores read 0 despite base values; leaves with several weights.
    forest = random_forest(3, 3, 2, ALL_MODES, 4, leaf_targets=2)
    attrs = regressor_attrs(forest, 4, base_values=[1.0, 2.0, 3.0, 4.0])
    check("TreeEnsembleRegressor", {"X": tree_input(12, 3)}, {"Y": TP.FLOAT}, version=1,
          **attrs)


def test_tree_regressor_single_target_post_ignored():
    forest = random_forest(3, 3, 2)
    attrs = regressor_attrs(forest, 1, post_transform="LOGISTIC", aggregate_function="AVERAGE",
                            base_values=[0.3])
    check("TreeEnsembleRegressor", {"X": tree_input(6, 3)}, {"Y": TP.FLOAT}, version=3, **attrs)


@pytest.mark.parametrize("dtype", [np.float64])
def test_tree_regressor_double(dtype):
    forest = random_forest(4, 3, 3, ALL_MODES, 2, missing=True)
    attrs = regressor_attrs(forest, 2)
    attrs["nodes_values_as_tensor"] = tensor(np.asarray(attrs.pop("nodes_values"), np.float64))
    attrs["target_weights_as_tensor"] = tensor(np.asarray(attrs.pop("target_weights"),
                                                          np.float64))
    attrs["base_values_as_tensor"] = tensor(np.asarray([0.25, -0.5], np.float64))
    check("TreeEnsembleRegressor", {"X": tree_input(10, 3, True, dtype)}, {"Y": TP.FLOAT},
          version=3, **attrs)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("n_classes", [3, 5])
@pytest.mark.parametrize("base", [False, True])
def test_tree_classifier_multiclass(post, n_classes, base):
    forest = random_forest(4, 4, 3, ALL_MODES, n_classes, missing=True)
    extra = dict(post_transform=post, classlabels_int64s=list(range(100, 100 + n_classes)))
    if base:
        extra["base_values"] = list(rng.standard_normal(n_classes).astype(np.float32))
    check("TreeEnsembleClassifier", {"X": tree_input(16, 4, True)},
          {"Y": TP.INT64, "Z": TP.FLOAT}, version=3, rtol=1e-5, atol=1e-6,
          **classifier_attrs(forest, **extra))


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("weights", ["class1", "class0", "both", "class1_positive"])
@pytest.mark.parametrize("n_base", [0, 1, 2])
@pytest.mark.parametrize("strings", [False, True])
def test_tree_classifier_binary(post, weights, n_base, strings):
    forest = random_forest(3, 3, 2, ALL_MODES, 2)
    ids = forest["t_ids"]
    if weights == "class1":
        forest["t_ids"] = [1] * len(ids)
    elif weights == "class0":
        forest["t_ids"] = [0] * len(ids)
    elif weights == "class1_positive":
        forest["t_ids"] = [1] * len(ids)
        forest["t_weights"] = [abs(w) * 0.3 for w in forest["t_weights"]]
    if post == "PROBIT":
        forest["t_weights"] = [abs(w) * 0.1 + 0.05 for w in forest["t_weights"]]
    extra = dict(post_transform=post)
    if n_base:
        extra["base_values"] = [0.1, 0.2][:n_base]
    if strings:
        extra["classlabels_strings"] = ["no", "yes"]
    else:
        extra["classlabels_int64s"] = [3, 7]
    model_attrs = classifier_attrs(forest, **extra)
    if weights == "both" and n_base < 2 or post == "PROBIT" and n_base < 2:
        # onnxruntime leaves the second column unwritten for some rows here (a single
        # probit score; mixed weights with one class scored and one base value).
        model = _model("TreeEnsembleClassifier", {"X": tree_input(10, 3)},
                       {"Y": TP.STRING if strings else TP.INT64, "Z": TP.FLOAT}, 3,
                       model_attrs)
        x = tree_input(10, 3)
        exp = ort_run(model, {"X": x})
        got = ferry_run("TreeEnsembleClassifier", {"X": x}, model_attrs, 3, 2)
        _compare(exp[0], got[0], 0, 0, "labels")
        np.testing.assert_allclose(got[1][:, 0], exp[1][:, 0], rtol=1e-5, atol=1e-6)
        return
    check("TreeEnsembleClassifier", {"X": tree_input(10, 3)},
          {"Y": TP.STRING if strings else TP.INT64, "Z": TP.FLOAT}, version=3, rtol=1e-5,
          atol=1e-6, **model_attrs)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_tree_classifier_input_types(dtype):
    forest = random_forest(3, 3, 3, ALL_MODES, 3)
    x = (rng.standard_normal((12, 3)) * 2).astype(dtype)
    check("TreeEnsembleClassifier", {"X": x}, {"Y": TP.INT64, "Z": TP.FLOAT}, version=3,
          **classifier_attrs(forest, classlabels_int64s=[0, 1, 2], post_transform="SOFTMAX"))


def test_tree_classifier_v1_strings():
    forest = random_forest(3, 3, 2, ALL_MODES, 3, missing=True)
    check("TreeEnsembleClassifier", {"X": tree_input(9, 3, True)},
          {"Y": TP.STRING, "Z": TP.FLOAT}, version=1,
          **classifier_attrs(forest, classlabels_strings=["a", "b", "c"]))


def v5_forest(n_trees, n_features, depth, n_targets, member=False, missing=False,
              dtype=np.float32):
    """Random trees in TreeEnsemble's (opset 5) encoding."""
    modes, feats_, splits, tids, fids, tl, fl, miss = [], [], [], [], [], [], [], []
    members = []
    leaf_t, leaf_w, roots = [], [], []

    def build(d):
        if d == depth:
            leaf_t.append(int(rng.integers(0, n_targets)))
            leaf_w.append(float(rng.standard_normal()))
            return len(leaf_t) - 1, True
        i = len(modes)
        m = int(rng.integers(0, 7 if member else 6))
        modes.append(m)
        feats_.append(int(rng.integers(0, n_features)))
        splits.append(float(rng.standard_normal() * 0.5))
        if m == 6:
            members.append([float(v) for v in rng.integers(-2, 3, 3)])
        miss.append(int(missing and rng.random() < 0.5))
        tids.append(0)
        fids.append(0)
        tl.append(0)
        fl.append(0)
        t, tleaf = build(d + 1)
        f, fleaf = build(d + 1)
        tids[i], tl[i], fids[i], fl[i] = t, int(tleaf), f, int(fleaf)
        return i, False

    for _ in range(n_trees):
        roots.append(build(0)[0])
    mv = []
    for g in members:
        mv.extend(g + [np.nan])
    attrs = dict(nodes_modes=helper.make_tensor("m", TP.UINT8, [len(modes)], modes),
                 nodes_featureids=feats_,
                 nodes_splits=onnx.numpy_helper.from_array(np.asarray(splits, dtype)),
                 nodes_truenodeids=tids, nodes_falsenodeids=fids, nodes_trueleafs=tl,
                 nodes_falseleafs=fl, leaf_targetids=leaf_t,
                 leaf_weights=onnx.numpy_helper.from_array(np.asarray(leaf_w, dtype)),
                 tree_roots=roots, n_targets=n_targets)
    if missing:
        attrs["nodes_missing_value_tracks_true"] = miss
    if mv:
        attrs["membership_values"] = onnx.numpy_helper.from_array(np.asarray(mv, dtype))
    return attrs


@pytest.mark.parametrize("agg", [0, 1, 2, 3])
@pytest.mark.parametrize("n_targets", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tree_ensemble_v5(agg, n_targets, dtype):
    attrs = v5_forest(4, 3, 3, n_targets, member=True, missing=True, dtype=dtype)
    attrs["aggregate_function"] = agg
    x = tree_input(20, 3, nan=True, dtype=dtype)
    x[:8] = rng.integers(-2, 3, (8, 3)).astype(dtype)  # hit set members
    check("TreeEnsemble", {"X": x}, {"Y": TP.FLOAT if dtype == np.float32 else TP.DOUBLE},
          version=5, **attrs)


@pytest.mark.parametrize("post", [0, 1, 2, 3, 4])
def test_tree_ensemble_v5_post(post):
    n_targets = 1 if post == 4 else 3
    attrs = v5_forest(3, 3, 2, n_targets)
    if post == 4:
        attrs["leaf_weights"] = onnx.numpy_helper.from_array(
            rng.uniform(0.1, 0.3, onnx.numpy_helper.to_array(attrs["leaf_weights"]).size)
            .astype(np.float32))
    attrs["post_transform"] = post
    x = tree_input(8, 3)
    # onnxruntime swaps 1 (SOFTMAX in the spec) and 2 (LOGISTIC): its model gets the other.
    ort_attrs = dict(attrs, post_transform={1: 2, 2: 1}.get(post, post))
    expected = ort_run_any(_model("TreeEnsemble", {"X": x}, {"Y": TP.FLOAT}, 5, ort_attrs),
                           {"X": x})
    got = ferry_run("TreeEnsemble", {"X": x}, attrs, 5, 1)
    _compare(expected[0], got[0], 1e-5, 1e-6, "TreeEnsemble Y")


def test_tree_ensemble_v5_single_leaf_tree():
    attrs = dict(nodes_modes=helper.make_tensor("m", TP.UINT8, [2], [0, 0]),
                 nodes_featureids=[0, 1],
                 nodes_splits=onnx.numpy_helper.from_array(np.asarray([0.0, 0.5], np.float32)),
                 nodes_truenodeids=[0, 1], nodes_falsenodeids=[0, 2], nodes_trueleafs=[1, 1],
                 nodes_falseleafs=[1, 1], leaf_targetids=[0, 0, 0],
                 leaf_weights=onnx.numpy_helper.from_array(
                     np.asarray([5.0, 1.0, 2.0], np.float32)),
                 tree_roots=[0, 1], n_targets=1)
    check("TreeEnsemble", {"X": tree_input(6, 2)}, {"Y": TP.FLOAT}, version=5, **attrs)


# --------------------------------------------------------------------------------------------
# Feature transforms


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_scaler(dtype):
    x = (rng.standard_normal((4, 3)) * 10).astype(dtype)
    check("Scaler", {"X": x}, {"Y": TP.FLOAT}, offset=[1.0, -2.0, 0.5], scale=[2.0, 0.5, -1.0])
    check("Scaler", {"X": x}, {"Y": TP.FLOAT}, offset=[1.5], scale=[3.0])


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_normalizer(norm, dtype):
    x = (rng.standard_normal((4, 5)) * 10 + 3).astype(dtype)
    check("Normalizer", {"X": x}, {"Y": TP.FLOAT}, norm=norm)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer_1d(norm):
    check("Normalizer", {"X": feats(1, 5)[0]}, {"Y": TP.FLOAT}, norm=norm)


def test_binarizer():
    x = feats(3, 4)
    check("Binarizer", {"X": x}, {"Y": TP.FLOAT}, threshold=0.3)


@pytest.mark.parametrize("per_feature", [False, True])
def test_imputer_float(per_feature):
    x = feats(4, 3)
    x[0, 1] = np.nan
    x[2, 0] = np.nan
    x[3, 2] = 1.5
    vals = [7.0, 8.0, 9.0] if per_feature else [7.0]
    check("Imputer", {"X": x}, {"Y": TP.FLOAT}, imputed_value_floats=vals,
          replaced_value_float=float("nan"))
    check("Imputer", {"X": x}, {"Y": TP.FLOAT}, imputed_value_floats=vals,
          replaced_value_float=1.5)


def test_imputer_int():
    x = rng.integers(-2, 3, (4, 3)).astype(np.int64)
    check("Imputer", {"X": x}, {"Y": TP.INT64}, imputed_value_int64s=[9, 8, 7],
          replaced_value_int64=0)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, object])
def test_array_feature_extractor(shape, dtype):
    x = rng.integers(0, 100, shape).astype(np.int64)
    x = x.astype(str).astype(object) if dtype is object else x.astype(dtype)
    check("ArrayFeatureExtractor", {"X": x, "Y": np.array([4, 0, 2], np.int64)},
          {"Z": TP.STRING if dtype is object else ir.numpy_dtype_to_onnx(np.dtype(dtype))})


@pytest.mark.parametrize("kind", ["int64", "string", "float", "double"])
@pytest.mark.parametrize("shape", [(4,), (2, 3)])
def test_one_hot_encoder(kind, shape):
    vals = rng.integers(0, 5, shape)
    if kind == "string":
        x = vals.astype(str).astype(object)
        attrs = dict(cats_strings=["0", "2", "3"])
    else:
        x = vals.astype({"int64": np.int64, "float": np.float32, "double": np.float64}[kind])
        attrs = dict(cats_int64s=[0, 2, 3])
    check("OneHotEncoder", {"X": x}, {"Y": TP.FLOAT}, zeros=1, **attrs)


def test_feature_vectorizer():
    for dtype in (np.float32, np.int64, np.float64, np.int32):
        a = (feats(3, 2) * 5).astype(dtype)
        b = rng.integers(0, 9, (3, 4)).astype(dtype)
        c = (rng.standard_normal((3, 1)) * 5).astype(dtype)
        check("FeatureVectorizer", {"A": a, "B": b, "C": c}, {"Y": TP.FLOAT},
              inputdimensions=[2, 3, 2])


# --------------------------------------------------------------------------------------------
# Encoders


def test_category_mapper():
    attrs = dict(cats_strings=["a", "b", "c"], cats_int64s=[3, 5, 7], default_int64=-9,
                 default_string="??")
    xs = np.array([["a", "z"], ["c", "b"]], dtype=object)
    check("CategoryMapper", {"X": xs}, {"Y": TP.INT64}, **attrs)
    xi = np.array([3, 4, 7, 5], np.int64)
    check("CategoryMapper", {"X": xi}, {"Y": TP.STRING}, **attrs)


def test_label_encoder_v1():
    attrs = dict(classes_strings=["x", "y", "z"], default_int64=42, default_string="none")
    check("LabelEncoder", {"X": np.array(["y", "q", "z"], dtype=object)}, {"Y": TP.INT64},
          **attrs)
    check("LabelEncoder", {"X": np.array([0, 2, 5, -1], np.int64)}, {"Y": TP.STRING}, **attrs)


V2_FORMS = [
    ("strings", "int64s", np.array(["a", "b", "zz"], dtype=object), TP.INT64),
    ("int64s", "strings", np.array([1, 2, 9], np.int64), TP.STRING),
    ("floats", "floats", np.array([0.5, 1.5, 9.0], np.float32), TP.FLOAT),
    ("floats", "int64s", np.array([0.5, 1.5, 9.0], np.float32), TP.INT64),
    ("int64s", "floats", np.array([1, 2, 9], np.int64), TP.FLOAT),
    ("strings", "strings", np.array(["a", "b", "zz"], dtype=object), TP.STRING),
    ("int64s", "int64s", np.array([1, 2, 9], np.int64), TP.INT64),
    ("floats", "strings", np.array([0.5, 1.5, 9.0], np.float32), TP.STRING),
    ("strings", "floats", np.array(["a", "b", "zz"], dtype=object), TP.FLOAT),
]
_KEYS = {"strings": ["a", "b", "c"], "int64s": [1, 2, 3], "floats": [0.5, 1.5, 2.5]}
_VALUES = {"strings": ["A", "B", "C"], "int64s": [10, 20, 30], "floats": [0.1, 0.2, 0.3]}


@pytest.mark.parametrize("version", [2, 4])
@pytest.mark.parametrize("kk,vk,x,out", V2_FORMS, ids=[f"{f[0]}-{f[1]}" for f in V2_FORMS])
def test_label_encoder_lists(version, kk, vk, x, out):
    attrs = {f"keys_{kk}": _KEYS[kk], f"values_{vk}": _VALUES[vk]}
    check("LabelEncoder", {"X": x}, {"Y": out}, version=version, **attrs)
    defaults = {"strings": {"default_string": "D"}, "int64s": {"default_int64": 77},
                "floats": {"default_float": 0.75}}[vk]
    check("LabelEncoder", {"X": x}, {"Y": out}, version=version, **attrs, **defaults)


TENSOR_FORMS = [
    (np.array([1.0, np.nan, 3.0], np.float64), np.array([10, 20, 30], np.int64),
     np.array([3.0, np.nan, 7.0, 1.0], np.float64), TP.INT64),
    (np.array([1, 2], np.int64), np.array([0.25, 0.5], np.float64),
     np.array([2, 5, 1], np.int64), TP.DOUBLE),
    (np.array(["p", "q"], dtype=object), np.array([4, -5], np.int16),
     np.array(["q", "r", "p"], dtype=object), TP.INT16),
    (np.array([0.5, np.nan], np.float32), np.array(["h", "n"], dtype=object),
     np.array([np.nan, 0.5, 2.0], np.float32), TP.STRING),
]


@pytest.mark.parametrize("keys,values,x,out", TENSOR_FORMS,
                         ids=["double-int64", "int64-double", "string-int16", "nan-keys"])
@pytest.mark.parametrize("default", [False, True])
def test_label_encoder_tensors(keys, values, x, out, default):
    attrs = dict(keys_tensor=ir.numpy_to_tensor(keys), values_tensor=ir.numpy_to_tensor(values))
    if default:
        attrs["default_tensor"] = ir.numpy_to_tensor(values[:1])
    check("LabelEncoder", {"X": x}, {"Y": out}, version=4, **attrs)


# --------------------------------------------------------------------------------------------
# Maps


@pytest.mark.parametrize("strings", [False, True])
def test_zipmap(strings):
    x = feats(3, 3)
    if strings:
        attrs = dict(classlabels_strings=["a", "b", "c"])
        out = helper.make_sequence_type_proto(_map_type(TP.STRING, TP.FLOAT))
    else:
        attrs = dict(classlabels_int64s=[1, 5, 9])
        out = helper.make_sequence_type_proto(_map_type(TP.INT64, TP.FLOAT))
    check("ZipMap", {"X": x}, {"Z": out}, **attrs)


def test_zipmap_is_dynamic():
    assert opset.get("ZipMap", ML, 1).dynamic_shape


# onnxruntime's Python API feeds only maps with float values; the other value types are
# checked against the op's definition.


def test_dict_vectorizer():
    check("DictVectorizer", {"X": {"b": 1.5, "a": 3.0, "zz": 4.5}}, {"Y": TP.FLOAT},
          string_vocabulary=["a", "b", "c"])
    check("DictVectorizer", {"X": {5: 1.5, 2: 3.0}}, {"Y": TP.FLOAT},
          int64_vocabulary=[1, 2, 5])


def test_dict_vectorizer_value_types():
    run = (lambda x, **a: ferry_run("DictVectorizer", {"X": x}, a, 1, 1)[0])
    y = run({1: "u", 4: "v"}, int64_vocabulary=[4, 2, 1])
    assert y.dtype == object and y.tolist() == [["v", "", "u"]]
    y = run({"a": 3, "b": 4}, string_vocabulary=["b", "c", "a"])
    assert y.dtype == np.int64 and y.tolist() == [[4, 0, 3]]
    y = run({"a": np.float64(0.5)}, string_vocabulary=["b", "a"])
    assert y.dtype == np.float64 and y.tolist() == [[0.0, 0.5]]


@pytest.mark.parametrize("cast_to", ["TO_FLOAT", "TO_INT64", "TO_STRING"])
@pytest.mark.parametrize("form", ["DENSE", "SPARSE"])
def test_cast_map(cast_to, form):
    x = {0: 1.5, 3: -2.25, 2: 7.0}
    elem = {"TO_FLOAT": TP.FLOAT, "TO_INT64": TP.INT64, "TO_STRING": TP.STRING}[cast_to]
    check("CastMap", {"X": x}, {"Y": elem}, cast_to=cast_to, map_form=form, max_map=5)


def test_cast_map_string_values():
    run = (lambda x, **a: ferry_run("CastMap", {"X": x}, a, 1, 1)[0])
    x = {0: "1.5", 3: "-2", 2: "7"}
    assert run(x, cast_to="TO_FLOAT").tolist() == [[1.5, 7.0, -2.0]]
    assert run(x, cast_to="TO_STRING", map_form="SPARSE", max_map=4).tolist() == [
        ["1.5", "0.f", "7", "-2"]]
    assert run({1: "12", 2: "3.7"}, cast_to="TO_INT64", map_form="SPARSE",
               max_map=3).tolist() == [[0, 12, 3]]


# --------------------------------------------------------------------------------------------
# Real models made with scikit-learn (skipped when skl2onnx is not installed)


def _skl_models():
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")


@pytest.mark.parametrize("name", ["logreg", "logreg_bin", "linsvc", "svc_proba", "svr",
                                  "rf_clf", "gb_clf_bin", "rf_reg", "gb_reg"])
def test_sklearn_models(name):
    _skl_models()
    from skl2onnx import to_onnx
    from sklearn import ensemble, linear_model, svm

    x = rng.standard_normal((60, 4)).astype(np.float32)
    y3 = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)
    yr = x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    est = {
        "logreg": (linear_model.LogisticRegression(max_iter=200), y3),
        "logreg_bin": (linear_model.LogisticRegression(max_iter=200), y3 > 0),
        "linsvc": (svm.LinearSVC(), y3),
        "svc_proba": (svm.SVC(probability=True, random_state=0), y3),
        "svr": (svm.SVR(), yr),
        "rf_clf": (ensemble.RandomForestClassifier(5, max_depth=4, random_state=0), y3),
        "gb_clf_bin": (ensemble.GradientBoostingClassifier(n_estimators=5, random_state=0),
                       y3 > 0),
        "rf_reg": (ensemble.RandomForestRegressor(5, max_depth=4, random_state=0), yr),
        "gb_reg": (ensemble.GradientBoostingRegressor(n_estimators=5, random_state=0), yr),
    }[name]
    model_obj, target = est
    model_obj.fit(x, target)
    onx = to_onnx(model_obj, x[:1], options={"zipmap": False}
                  if hasattr(model_obj, "predict_proba") else None,
                  target_opset={"": 17, "ai.onnx.ml": 3})
    from tests.providers.cpu.node_case_runner import compare_model_with_ort

    compare_model_with_ort(onx, {onx.graph.input[0].name: x}, rtol=1e-4, atol=1e-5,
                           fallback=True)
