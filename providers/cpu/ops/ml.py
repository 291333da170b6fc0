"""The ai.onnx.ml operators: linear and SVM models, tree ensembles, encoders, scalers and the
map/sequence helpers (ZipMap, DictVectorizer, CastMap).

onnxruntime is the reference for everything the spec leaves open, and these ops leave a lot
open: which scores a binary classifier writes, which post transforms apply when there is a
single score, how base values combine with tree outputs. The conventions copied here are
named where they apply. Scores are computed in float32 as onnxruntime does (its ML kernels
cast every numeric input to float); the exceptions (double trees, double LabelEncoder) say so.

Maps are python dicts and ZipMap's output is a python list of dicts, as onnxruntime's Python
API returns them.
"""

from __future__ import annotations

import math
import re

import numpy as np

from providers.cpu.opset import ML_DOMAIN, register

_F32 = np.float32

# --------------------------------------------------------------------------------------------
# Score post transforms (onnxruntime's ml_common.h conventions, in float32)


def _logistic(v: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-v)), evaluated on |v| and mirrored so that it never overflows."""
    v = np.asarray(v, _F32)
    with np.errstate(over="ignore"):
        e = (_F32(1) / (_F32(1) + np.exp(-np.abs(v)))).astype(_F32)
    return np.where(v < 0, _F32(1) - e, e).astype(_F32)


def _erfinv(x: np.ndarray) -> np.ndarray:
    """Winitzki's closed-form erf inverse (a = 0.147), the one onnxruntime's PROBIT uses;
    its relative error is below 2e-3, so PROBIT scores are only that close to the exact
    quantile function, by design of the reference."""
    x = np.asarray(x, _F32)
    sgn = np.where(x < 0, _F32(-1), _F32(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (_F32(1) - x) * (_F32(1) + x)
        lg = np.log(t)
        v = _F32(2 / (math.pi * 0.147)) + _F32(0.5) * lg
        v2 = _F32(1 / 0.147) * lg
        v3 = -v + np.sqrt(v * v - v2)
        return (sgn * np.sqrt(v3)).astype(_F32)


def _probit(v: np.ndarray) -> np.ndarray:
    return (_F32(math.sqrt(2)) * _erfinv(_F32(2) * np.asarray(v, _F32) - _F32(1))).astype(_F32)


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, _F32)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(_F32)


def _softmax_zero_rows(s: np.ndarray) -> np.ndarray:
    """Softmax that leaves (near-)zero scores out of the sum: they stand for 'no score'."""
    s = np.asarray(s, _F32)
    vmax = s.max(axis=-1, keepdims=True)
    nonzero = np.abs(s) > _F32(1e-7)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.where(nonzero, np.exp(s - vmax), s * np.exp(-vmax)).astype(_F32)
        total = np.where(nonzero, e, _F32(0)).sum(axis=-1, keepdims=True)
        return (e / total).astype(_F32)


def _transform(scores: np.ndarray, post: str) -> np.ndarray:
    """The post transform of a row of two or more scores."""
    if post == "LOGISTIC":
        return _logistic(scores)
    if post == "SOFTMAX":
        return _softmax_rows(scores)
    if post == "SOFTMAX_ZERO":
        return _softmax_zero_rows(scores)
    if post == "PROBIT":
        return _probit(scores)
    return np.asarray(scores, _F32)


def _second_class(s: np.ndarray, post: str, mode: int, batched: bool = False) -> np.ndarray:
    """A single score expanded to two columns (onnxruntime's ``add_second_class``): modes 0
    and 1 write [1 - s, s]; 2 and 3 write [-s, s], or with LOGISTIC [sigmoid(-s), sigmoid(s)].
    The linear and SVM kernels (``batched``) also take the sigmoid first in modes 0 and 1;
    the tree kernels do not. Other transforms are not applied to a single score."""
    s = np.asarray(s, _F32)
    if mode in (0, 1):
        if batched and post == "LOGISTIC":
            s = _logistic(s)
        return np.stack([_F32(1) - s, s], axis=-1).astype(_F32)
    if post == "LOGISTIC":
        return np.stack([_logistic(-s), _logistic(s)], axis=-1)
    return np.stack([-s, s], axis=-1).astype(_F32)


def _as_rows(x) -> np.ndarray:
    """An [N, C] (or [C], one row) input as float32 rows, as onnxruntime's ML kernels see it."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("the input needs at least one dimension")
    if x.ndim == 1:
        x = x.reshape(1, -1)
    elif x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    return x.astype(_F32)


def _labels(ints, strings):
    """(labels array, is_string) from classlabels_ints/int64s and classlabels_strings."""
    if strings:
        return np.array(list(strings), dtype=object), True
    return np.asarray(list(ints or []), dtype=np.int64), False


def _label_array(values: list, is_string: bool) -> np.ndarray:
    if is_string:
        return np.array(values, dtype=object).reshape(-1)
    return np.asarray(values, dtype=np.int64).reshape(-1)


# --------------------------------------------------------------------------------------------
# Linear models


@register("LinearClassifier", since=1, domain=ML_DOMAIN)
def linear_classifier(x, *, coefficients=None, intercepts=None, classlabels_ints=None,
                      classlabels_strings=None, multi_class=0, post_transform="NONE"):
    """scores = X coefficients^T + intercepts; the label is the best class, or for one score
    its sign. One score (two labels) becomes [1 - p, p] with p the score, or its sigmoid
    under LOGISTIC; the other transforms do not apply to it (onnxruntime)."""
    rows = _as_rows(x)
    coef = np.asarray(coefficients, _F32)
    n_targets = len(intercepts) if intercepts else coef.size // max(rows.shape[1], 1)
    coef = coef.reshape(n_targets, -1)
    inter = np.asarray(intercepts if intercepts else np.zeros(n_targets), _F32)
    scores = (rows @ coef.T + inter).astype(_F32)
    labels, is_string = _labels(classlabels_ints, classlabels_strings)
    if n_targets == 1:
        if len(labels) != 2:
            raise ValueError("LinearClassifier with one score needs exactly two class labels")
        y = _label_array([labels[1] if s > 0 else labels[0] for s in scores[:, 0]], is_string)
        if post_transform == "PROBIT":
            # onnxruntime writes the N probits at the start of the [N, 2] buffer and leaves
            # the rest unwritten (here: 0).
            out = np.zeros(scores.shape[0] * 2, _F32)
            out[:scores.shape[0]] = _probit(scores[:, 0])
            return y, out.reshape(-1, 2)
        return y, _second_class(scores[:, 0], post_transform, 1, batched=True)
    else:
        y = labels[np.argmax(scores, axis=1)]
        if post_transform != "NONE":
            scores = _transform(scores, post_transform)
    return y, scores.astype(_F32)


@register("LinearRegressor", since=1, domain=ML_DOMAIN)
def linear_regressor(x, *, coefficients=None, intercepts=None, post_transform="NONE",
                     targets=1):
    """Y = X coefficients^T + intercepts, [N, targets]; one target only takes PROBIT."""
    rows = _as_rows(x)
    coef = np.asarray(coefficients, _F32).reshape(int(targets), -1)
    y = (rows @ coef.T).astype(_F32)
    if intercepts:
        y = (y + np.asarray(intercepts, _F32)).astype(_F32)
    if post_transform == "PROBIT" and targets == 1:
        y = _probit(y)
    elif targets > 1 and post_transform != "NONE":
        y = _transform(y, post_transform)
    return y.astype(_F32)


# --------------------------------------------------------------------------------------------
# Support vector machines


def _kernel_params(kernel_params):
    if kernel_params:
        gamma, coef0, degree = (float(v) for v in list(kernel_params)[:3])
        return _F32(gamma), _F32(coef0), _F32(degree)
    return _F32(0), _F32(0), _F32(0)


def _kernel_dot(x: np.ndarray, b: np.ndarray, kernel: str, params, c: float) -> np.ndarray:
    """K(x_i, b_j) for every row of x and b: [N, M]."""
    gamma, coef0, degree = params
    if kernel == "RBF":
        out = np.empty((x.shape[0], b.shape[0]), _F32)
        step = max(1, (1 << 22) // max(b.size, 1))  # bounds the [rows, M, F] temporary
        for i in range(0, x.shape[0], step):
            d = x[i:i + step, None, :] - b[None, :, :]
            out[i:i + step] = np.exp(-gamma * (d * d).sum(axis=-1, dtype=_F32))
        return out
    if kernel == "LINEAR":
        return (x @ b.T + _F32(c)).astype(_F32)
    out = (gamma * (x @ b.T) + coef0).astype(_F32)
    if kernel == "POLY":
        return np.power(out, degree).astype(_F32)
    return np.tanh(out).astype(_F32)  # SIGMOID


def _multiclass_probability(k: int, r: np.ndarray) -> np.ndarray:
    """Pairwise coupling of class probabilities (Wu, Lin and Weng 2004, method 2), the
    iteration libsvm and onnxruntime run, step by step in float32 so that it stops after the
    same number of sweeps."""
    f = _F32
    q = [[f(0)] * k for _ in range(k)]
    p = [f(1) / f(k)] * k
    for i in range(k):
        for j in range(i):
            q[i][i] = f(q[i][i] + r[j, i] * r[j, i])
            q[i][j] = q[j][i]
        for j in range(i + 1, k):
            q[i][i] = f(q[i][i] + r[j, i] * r[j, i])
            q[i][j] = f(-r[j, i] * r[i, j])
    eps = f(0.005) / f(k)
    qp = [f(0)] * k
    for _ in range(100):
        pqp = f(0)
        for i in range(k):
            acc = f(0)
            for j in range(k):
                acc = f(acc + q[i][j] * p[j])
            qp[i] = acc
            pqp = f(pqp + p[i] * qp[i])
        if max(abs(f(qp[i] - pqp)) for i in range(k)) < eps:
            break
        for i in range(k):
            diff = f((-qp[i] + pqp) / q[i][i])
            p[i] = f(p[i] + diff)
            one = f(f(1) + diff)
            pqp = f(f(f(pqp + diff * f(diff * q[i][i] + f(2) * qp[i])) / one) / one)
            for j in range(k):
                qp[j] = f(f(qp[j] + diff * q[i][j]) / one)
                p[j] = f(p[j] / one)
    return np.asarray(p, _F32)


@register("SVMClassifier", since=1, domain=ML_DOMAIN)
def svm_classifier(x, *, classlabels_ints=None, classlabels_strings=None, coefficients=None,
                   kernel_params=None, kernel_type="LINEAR", post_transform="NONE",
                   prob_a=None, prob_b=None, rho=None, support_vectors=None,
                   vectors_per_class=None):
    """One-vs-one SVC (support vectors given) or linear SVM. Labels come from the votes of
    the pairwise classifiers (SVC) or the best score (linear); with prob_a/prob_b the scores
    are Platt probabilities coupled across classes. Without probabilities a binary SVC
    writes [-s, s] (post transform NONE) or [1 - s, s], as onnxruntime does."""
    rows = _as_rows(x)
    labels, is_string = _labels(classlabels_ints, classlabels_strings)
    k = len(labels)
    coef = np.asarray(coefficients, _F32)
    rho = np.asarray(rho if rho else [0.0], _F32)
    proba_a = np.asarray(prob_a or [], _F32)
    proba_b = np.asarray(prob_b or [], _F32)
    have_proba = proba_a.size > 0
    per_class = [int(v) for v in (vectors_per_class or [])]
    n_vectors = sum(per_class)
    weights_positive = bool(np.all(coef >= 0))
    n = rows.shape[0]
    params = _kernel_params(kernel_params)
    n_pairs = k * (k - 1) // 2

    if n_vectors == 0:  # linear SVM (liblinear)
        scores = _kernel_dot(rows, coef.reshape(k, -1), "LINEAR", params, float(rho[0]))
        maxclass = np.argmax(scores, axis=1)
        maxweight = scores[np.arange(n), maxclass]
        if n_pairs == 1 and not have_proba:
            pick1 = ((weights_positive & (maxweight >= 0.5))
                     | (~weights_positive & (maxweight > 0)))
            idx = np.where(pick1, 1, maxclass)
        else:
            idx = maxclass
        y = labels[idx]
        if k >= 2:
            scores = _transform(scores, post_transform)
        elif post_transform == "PROBIT":
            scores = _probit(scores)
        return _label_array(list(y), is_string), scores.astype(_F32)

    sv = np.asarray(support_vectors, _F32).reshape(n_vectors, -1)
    kern = _kernel_dot(rows, sv, kernel_type, params, 0.0)
    coef = coef.reshape(k - 1, n_vectors)
    starts = np.concatenate([[0], np.cumsum(per_class)[:-1]]).astype(int)
    pair_scores = np.empty((n, n_pairs), _F32)
    votes = np.zeros((n, k), np.int64)
    kern64 = kern.astype(np.float64)
    coef64 = coef.astype(np.float64)
    idx = 0
    for i in range(k - 1):
        si, ci = starts[i], per_class[i]
        for j in range(i + 1, k):
            sj, cj = starts[j], per_class[j]
            # onnxruntime sums in double
            s = (kern64[:, si:si + ci] @ coef64[j - 1, si:si + ci]
                 + kern64[:, sj:sj + cj] @ coef64[i, sj:sj + cj] + float(rho[idx]))
            pair_scores[:, idx] = s
            win = np.where(s > 0, i, j)
            votes[np.arange(n), win] += 1
            idx += 1
    y = labels[np.argmax(votes, axis=1)]
    y = _label_array(list(y), is_string)
    if have_proba:
        out = np.empty((n, k), _F32)
        for row in range(n):
            probs = np.zeros((k, k), _F32)
            idx = 0
            for i in range(k - 1):
                for j in range(i + 1, k):
                    v = _F32(1) - _logistic(pair_scores[row, idx] * proba_a[idx]
                                            + proba_b[idx])
                    v = np.clip(v, _F32(1e-7), _F32(1) - _F32(1e-7)).astype(_F32)
                    probs[i, j] = v
                    probs[j, i] = _F32(1) - v
                    idx += 1
            out[row] = _multiclass_probability(k, probs)
        if k >= 2:
            out = _transform(out, post_transform)
        return y, out
    if k <= 2:
        s = pair_scores[:, 0]
        if post_transform == "PROBIT":
            # onnxruntime writes only the first of the two columns here; the second is
            # left as 0.
            out = np.zeros((n, 2), _F32)
            out[:, 0] = _probit(s)
            return y, out
        mode = 2 if post_transform == "NONE" else 0
        return y, _second_class(s, post_transform, mode, batched=True)
    return y, _transform(pair_scores, post_transform)


@register("SVMRegressor", since=1, domain=ML_DOMAIN)
def svm_regressor(x, *, coefficients=None, kernel_params=None, kernel_type="LINEAR",
                  n_supports=0, one_class=0, post_transform="NONE", rho=None,
                  support_vectors=None):
    """sum_j coef_j K(x, sv_j) + rho (or x . coef + rho without support vectors), [N, 1];
    one_class maps the score to +1/-1. onnxruntime applies no post transform here."""
    rows = _as_rows(x)
    coef = np.asarray(coefficients, _F32)
    rho0 = _F32(rho[0]) if rho else _F32(0)
    params = _kernel_params(kernel_params)
    if n_supports > 0:
        sv = np.asarray(support_vectors, _F32).reshape(int(n_supports), -1)
        kern = _kernel_dot(rows, sv, kernel_type, params, 0.0)
        y = (kern @ coef.reshape(-1, 1) + rho0).astype(_F32)
    else:
        y = _kernel_dot(rows, coef.reshape(1, -1), "LINEAR", params, float(rho0))
    if one_class:
        y = np.where(y > 0, _F32(1), _F32(-1)).astype(_F32)
    return y.astype(_F32)


# --------------------------------------------------------------------------------------------
# Tree ensembles
#
# Every form (the Regressor/Classifier attribute lists and TreeEnsemble's opset-5 encoding) is
# turned into one flat node table, then all rows walk all trees at once, one level per step.


_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
          "BRANCH_NEQ": 5, "BRANCH_MEMBER": 6, "LEAF": 7}
_LEAF = 7
_MEMBER = 6


class _Forest:
    """Flat tree table. Leaves carry (target, weight) pairs in onnxruntime's order (sorted by
    tree and node id), ``first`` the single value a one-target ensemble adds (the first
    weight, or the leaf's own node value when it has none)."""

    def __init__(self, dtype, mode, feature, value, missing, true_idx, false_idx, roots,
                 members=None):
        self.dtype = np.dtype(dtype)
        self.mode = np.asarray(mode, np.int8)
        self.feature = np.asarray(feature, np.int64)
        self.value = np.asarray(value, self.dtype)
        self.missing = np.asarray(missing, bool)
        self.true_idx = np.asarray(true_idx, np.int64)
        self.false_idx = np.asarray(false_idx, np.int64)
        self.roots = np.asarray(roots, np.int64)
        self.members = members or {}
        self.is_leaf = self.mode == _LEAF
        self.weights: dict[int, list[tuple[int, float]]] = {}

    def add_weight(self, node: int, target: int, weight) -> None:
        if not self.is_leaf[node]:
            return  # onnxruntime ignores weights on inner nodes (old onnxmltools models)
        self.weights.setdefault(node, []).append((int(target), weight))

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: [N, n_trees] node indices."""
        n = x.shape[0]
        pos = np.broadcast_to(self.roots, (n, self.roots.size)).copy()
        if pos.size == 0:
            return pos
        if self.feature[~self.is_leaf].size and x.shape[1] <= self.feature[~self.is_leaf].max():
            raise ValueError(f"a tree tests feature {self.feature[~self.is_leaf].max()} but "
                             f"the input has {x.shape[1]} features")
        rows = np.broadcast_to(np.arange(n)[:, None], pos.shape)
        for _ in range(self.mode.size + 1):
            active = ~self.is_leaf[pos]
            if not active.any():
                return pos
            p = pos[active]
            val = x[rows[active], self.feature[p]]
            thr = self.value[p]
            mode = self.mode[p]
            with np.errstate(invalid="ignore"):
                cond = np.select(
                    [mode == 0, mode == 1, mode == 2, mode == 3, mode == 4, mode == 5],
                    [val <= thr, val < thr, val >= thr, val > thr, val == thr, val != thr],
                    False)
            if self.members:
                for node in np.unique(p[mode == _MEMBER]):
                    sel = p == node
                    cond[sel] = self._member(val[sel], int(node))
            if val.dtype.kind == "f":
                cond |= self.missing[p] & np.isnan(val)
            pos[active] = np.where(cond, self.true_idx[p], self.false_idx[p])
        raise ValueError("a tree has a cycle")

    def _member(self, val: np.ndarray, node: int) -> np.ndarray:
        """Set membership. onnxruntime tests small sets (fewer than 31 members, all in
        [0, 30]) exactly and larger ones on the value truncated to an integer."""
        members = self.members[node]
        small = members.size < 31 and (members.size == 0 or (members.min() >= 0
                                                             and members.max() <= 30))
        if small or val.dtype.kind not in "f":
            return np.isin(val, members)
        ok = np.isfinite(val) & (np.abs(val) < 2.0 ** 31)
        ints = np.trunc(np.where(ok, val, 0))
        return ok & np.isin(ints, members)

    def leaf_tables(self, n_targets: int, reduce: str):
        """Per node: the combined weight per target ([nodes, K]) and which targets a leaf
        scores ([nodes, K] bool)."""
        w = np.zeros((self.mode.size, n_targets), self.dtype)
        has = np.zeros((self.mode.size, n_targets), bool)
        for node, pairs in self.weights.items():
            for t, v in pairs:
                if not 0 <= t < n_targets:
                    raise ValueError(f"target/class id {t} out of range [0, {n_targets})")
                v = self.dtype.type(v)
                if not has[node, t]:
                    w[node, t] = v
                elif reduce == "MIN":
                    w[node, t] = min(w[node, t], v)
                elif reduce == "MAX":
                    w[node, t] = max(w[node, t], v)
                else:
                    w[node, t] = w[node, t] + v
                has[node, t] = True
        return w, has

    def first_values(self) -> np.ndarray:
        first = self.value.copy()
        for node, pairs in self.weights.items():
            first[node] = pairs[0][1]
        return first


def _forest_from_lists(dtype, nodes_treeids, nodes_nodeids, nodes_modes, nodes_featureids,
                       nodes_values, nodes_truenodeids, nodes_falsenodeids,
                       nodes_missing_value_tracks_true, target_treeids, target_nodeids,
                       target_ids, target_weights) -> _Forest:
    """The TreeEnsembleRegressor/Classifier encoding: parallel lists keyed by (tree, node).
    A tree's root is the first node of each run of equal tree ids, as in onnxruntime."""
    treeids = [int(v) for v in nodes_treeids]
    nodeids = [int(v) for v in nodes_nodeids]
    n = len(treeids)
    for name, lst in (("nodes_modes", nodes_modes), ("nodes_featureids", nodes_featureids),
                      ("nodes_values", nodes_values), ("nodes_truenodeids", nodes_truenodeids),
                      ("nodes_falsenodeids", nodes_falsenodeids)):
        if len(lst) != n:
            raise ValueError(f"{name} has {len(lst)} entries, nodes_treeids {n}")
    index = {}
    for i, key in enumerate(zip(treeids, nodeids)):
        if key in index:
            raise ValueError(f"node {key[1]} of tree {key[0]} is defined twice")
        index[key] = i
    mode = []
    for m in nodes_modes:
        if m not in _MODES or m == "BRANCH_MEMBER":
            raise ValueError(f"unknown node mode {m!r}")
        mode.append(_MODES[m])
    true_idx = np.zeros(n, np.int64)
    false_idx = np.zeros(n, np.int64)
    for i in range(n):
        if mode[i] == _LEAF:
            continue
        for arr, ids, what in ((true_idx, nodes_truenodeids, "true"),
                               (false_idx, nodes_falsenodeids, "false")):
            j = index.get((treeids[i], int(ids[i])))
            if j is None or j == i:
                raise ValueError(f"{what} branch of node {nodeids[i]} in tree {treeids[i]} "
                                 f"does not exist or points to itself")
            arr[i] = j
    missing = np.zeros(n, bool)
    tracks = list(nodes_missing_value_tracks_true or [])
    missing[:len(tracks)] = [int(v) == 1 for v in tracks[:n]]
    roots = [i for i in range(n) if i == 0 or treeids[i] != treeids[i - 1]]
    forest = _Forest(dtype, mode, nodes_featureids, nodes_values, missing, true_idx, false_idx,
                     roots)
    order = sorted(range(len(target_nodeids)),
                   key=lambda i: (int(target_treeids[i]), int(target_nodeids[i]), i))
    for i in order:
        j = index.get((int(target_treeids[i]), int(target_nodeids[i])))
        if j is None:
            raise ValueError(f"weight for missing node {target_nodeids[i]} of tree "
                             f"{target_treeids[i]}")
        forest.add_weight(j, int(target_ids[i]), target_weights[i])
    return forest


def _tensor_or_list(lst, tensor, dtype):
    if tensor is not None:
        return np.asarray(tensor).astype(dtype).reshape(-1)
    return np.asarray(list(lst or []), np.float64).astype(dtype)


def _threshold_dtype(x: np.ndarray) -> np.dtype:
    """onnxruntime compares and accumulates in double for double inputs, float otherwise."""
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


def _tree_input(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError("tree ensembles take 1-D or 2-D inputs")
    return x


def _compare_input(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # Integer features compare as the threshold type (C++'s usual conversions).
    return x.astype(dtype) if x.dtype != dtype else x


def _accumulate(forest: _Forest, leaves: np.ndarray, n_targets: int, agg: str):
    """Scores [N, K] and which targets received a weight, tree by tree in order."""
    n = leaves.shape[0]
    dt = forest.dtype
    if n_targets == 1:
        first = forest.first_values()
        score = np.zeros(n, dt)
        for t in range(leaves.shape[1]):
            v = first[leaves[:, t]]
            if agg in ("SUM", "AVERAGE"):
                score = (score + v).astype(dt)
            elif t == 0:
                score = v.copy()
            else:
                score = np.minimum(score, v) if agg == "MIN" else np.maximum(score, v)
        return score.reshape(n, 1), np.full((n, 1), leaves.shape[1] > 0)
    reduce = agg if agg in ("MIN", "MAX") else "SUM"
    w, h = forest.leaf_tables(n_targets, reduce)
    score = np.zeros((n, n_targets), dt)
    has = np.zeros((n, n_targets), bool)
    for t in range(leaves.shape[1]):
        wl = w[leaves[:, t]]
        hl = h[leaves[:, t]]
        if reduce == "SUM":
            score = np.where(hl, score + wl, score).astype(dt)
        else:
            better = (wl < score) if reduce == "MIN" else (wl > score)
            score = np.where(hl & (~has | better), wl, score).astype(dt)
        has |= hl
    return score, has


def _regress(forest: _Forest, x: np.ndarray, n_targets: int, agg: str, post: str,
             base: np.ndarray, out_dtype) -> np.ndarray:
    leaves = forest.leaves(_compare_input(x, forest.dtype))
    score, has = _accumulate(forest, leaves, n_targets, agg)
    n_trees = forest.roots.size
    dt = forest.dtype
    if n_targets == 1:
        origin = dt.type(base[0]) if base.size == 1 else dt.type(0)
        s = score[:, 0]
        if agg == "AVERAGE":
            s = (s / dt.type(n_trees)).astype(dt)
        s = (s + origin).astype(dt)
        if post == "PROBIT":
            s = _probit(s.astype(_F32))
        return s.reshape(-1, 1).astype(out_dtype)
    use_base = base.size == n_targets
    if agg == "AVERAGE":
        score = (score / dt.type(n_trees)).astype(dt)
    if use_base:
        score = (score + base.astype(dt)).astype(dt)
    # A target no leaf scored reads as 0 whatever its base value (onnxruntime's ScoreValue).
    score = np.where(has, score, dt.type(0))
    if post != "NONE":
        score = _transform(score.astype(_F32), post)
    return score.astype(out_dtype)


@register("TreeEnsembleRegressor", since=1, domain=ML_DOMAIN)
@register("TreeEnsembleRegressor", since=3, domain=ML_DOMAIN)
def tree_ensemble_regressor(x, *, aggregate_function="SUM", base_values=None,
                            base_values_as_tensor=None, n_targets=None,
                            nodes_falsenodeids=None, nodes_featureids=None, nodes_hitrates=None,
                            nodes_hitrates_as_tensor=None, nodes_missing_value_tracks_true=None,
                            nodes_modes=None, nodes_nodeids=None, nodes_treeids=None,
                            nodes_truenodeids=None, nodes_values=None,
                            nodes_values_as_tensor=None, post_transform="NONE",
                            target_ids=None, target_nodeids=None, target_treeids=None,
                            target_weights=None, target_weights_as_tensor=None):
    """Sum/average/min/max of the leaf weights per target, plus base values, [N, n_targets]
    float. A single target only takes the PROBIT transform (onnxruntime)."""
    x = _tree_input(x)
    dt = _threshold_dtype(x)
    forest = _forest_from_lists(
        dt, nodes_treeids or [], nodes_nodeids or [], nodes_modes or [],
        nodes_featureids or [], _tensor_or_list(nodes_values, nodes_values_as_tensor, dt),
        nodes_truenodeids or [], nodes_falsenodeids or [], nodes_missing_value_tracks_true,
        target_treeids or [], target_nodeids or [], target_ids or [],
        _tensor_or_list(target_weights, target_weights_as_tensor, dt))
    base = _tensor_or_list(base_values, base_values_as_tensor, dt)
    k = int(n_targets or 1)
    return _regress(forest, x, k, aggregate_function, post_transform, base, _F32)


_V5_AGG = {0: "AVERAGE", 1: "SUM", 2: "MIN", 3: "MAX"}
# The spec's numbering (as the onnx reference). onnxruntime 1.2x-1.3x reads 1 as LOGISTIC
# and 2 as SOFTMAX, its own enum's order: a known deviation we do not copy.
_V5_POST = {0: "NONE", 1: "SOFTMAX", 2: "LOGISTIC", 3: "SOFTMAX_ZERO", 4: "PROBIT"}


@register("TreeEnsemble", since=5, domain=ML_DOMAIN)
def tree_ensemble(x, *, aggregate_function=1, leaf_targetids=None, leaf_weights=None,
                  membership_values=None, n_targets=None, nodes_falseleafs=None,
                  nodes_falsenodeids=None, nodes_featureids=None, nodes_hitrates=None,
                  nodes_missing_value_tracks_true=None, nodes_modes=None, nodes_splits=None,
                  nodes_trueleafs=None, nodes_truenodeids=None, post_transform=0,
                  tree_roots=None):
    """The opset-5 encoding: interior nodes and leaves in separate lists, thresholds as
    tensors of the input type, set membership nodes. Output [N, n_targets] of X's type."""
    x = _tree_input(x)
    dt = np.dtype(x.dtype) if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    modes = np.asarray(nodes_modes).astype(np.int64).reshape(-1)
    n_int = modes.size
    splits = np.asarray(nodes_splits).astype(dt).reshape(-1)
    weights = np.asarray(leaf_weights).astype(dt).reshape(-1)
    targets = [int(v) for v in (leaf_targetids or [])]
    n_leaf = weights.size
    if len(targets) != n_leaf:
        raise ValueError("leaf_targetids and leaf_weights differ in length")
    trueleafs = list(nodes_trueleafs or [0] * n_int)
    falseleafs = list(nodes_falseleafs or [0] * n_int)
    truenodes = list(nodes_truenodeids or [])
    falsenodes = list(nodes_falsenodeids or [])
    # Set members, in the order of the BRANCH_MEMBER nodes, NaN-separated.
    members = {}
    if membership_values is not None and np.asarray(membership_values).size:
        vals = np.asarray(membership_values).astype(dt).reshape(-1)
        groups, cur = [], []
        for v in vals:
            if np.isnan(v):
                groups.append(cur)
                cur = []
            else:
                cur.append(v)
        if cur:
            groups.append(cur)
        gi = 0
        for i in range(n_int):
            if modes[i] == _MEMBER:
                members[i] = np.asarray(groups[gi] if gi < len(groups) else [], dt)
                gi += 1
                m = members[i]
                big = m.size >= 31 or (m.size and (m.min() < 0 or m.max() > 30))
                if big and not np.all((m == np.trunc(m)) & (np.abs(m) < 2.0 ** 31)):
                    raise ValueError("large membership sets must hold int32 values "
                                     "(onnxruntime)")
    mode = np.concatenate([np.clip(modes, 0, 6), np.full(n_leaf, _LEAF)])
    feature = np.concatenate([np.asarray(nodes_featureids or [0] * n_int, np.int64),
                              np.zeros(n_leaf, np.int64)])
    value = np.concatenate([splits if splits.size == n_int else np.zeros(n_int, dt),
                            np.zeros(n_leaf, dt)])
    missing = np.zeros(n_int + n_leaf, bool)
    tracks = list(nodes_missing_value_tracks_true or [])
    missing[:min(len(tracks), n_int)] = [int(v) == 1 for v in tracks[:n_int]]
    true_idx = np.zeros(n_int + n_leaf, np.int64)
    false_idx = np.zeros(n_int + n_leaf, np.int64)
    for i in range(n_int):
        true_idx[i] = int(truenodes[i]) + (n_int if trueleafs[i] else 0)
        false_idx[i] = int(falsenodes[i]) + (n_int if falseleafs[i] else 0)
    if ((true_idx[:n_int] >= n_int + n_leaf) | (false_idx[:n_int] >= n_int + n_leaf)).any():
        raise ValueError("a branch points past the nodes or leaves")
    roots = []
    for r in (tree_roots or []):
        r = int(r)
        # A one-leaf tree is one node whose branches both reach the same leaf.
        if truenodes[r] == falsenodes[r] and trueleafs[r] and falseleafs[r]:
            roots.append(n_int + int(truenodes[r]))
        else:
            roots.append(r)
    forest = _Forest(dt, mode, feature, value, missing, true_idx, false_idx, roots, members)
    for leaf in range(n_leaf):
        forest.add_weight(n_int + leaf, targets[leaf], weights[leaf])
    agg = _V5_AGG.get(int(aggregate_function))
    post = _V5_POST.get(int(post_transform))
    if agg is None or post is None:
        raise ValueError("aggregate_function or post_transform out of range")
    return _regress(forest, x, int(n_targets), agg, post, np.zeros(0, dt), x.dtype)


def _classify_rows(score: np.ndarray, has: np.ndarray, base: np.ndarray, labels, n_classes,
                   binary_case: bool, positive: bool, post: str):
    """onnxruntime's TreeAggregatorClassifier.FinalizeScores, row by row: the label index
    (or the literal 0/1 of its non-binary fallback) and the scores."""
    n = score.shape[0]
    z = np.zeros((n, n_classes), _F32)
    y_idx: list = []
    if n_classes > 2:
        score = score.copy()
        has = has.copy()
        for k in range(min(base.size, n_classes)):
            score[:, k] = np.where(has[:, k], score[:, k] + base[k], base[k])
            has[:, k] = True
        masked = np.where(has, score, -np.inf)
        y_idx = list(np.argmax(masked, axis=1))
        eff = np.where(has, score, 0).astype(_F32)
        return y_idx, _transform(eff, post) if post != "NONE" else eff
    for r in range(n):
        s = [score[r, 0], score[r, 1]]
        h = [bool(has[r, 0]), bool(has[r, 1])]
        extra = -1
        if base.size == 2:
            if h[1]:
                s[1] = base[1] + s[0]
                s[0] = -s[1]
            else:
                s[1] = s[1] + base[1]
                s[0] = s[0] + base[0]
        elif base.size == 1:
            s[0] = s[0] + base[0]
        else:
            extra = 3
        size = 1 if (base.size < 2 and not h[1]) else 2
        pos_w = s[1] if (size == 2 and h[1]) else (s[0] if h[0] else 0)
        if binary_case:
            if positive:
                extra, lab = (0, 1) if pos_w > 0.5 else (1, 0)
            else:
                extra, lab = (2, 1) if pos_w > 0 else (3, 0)
            y_idx.append(("label", lab))
        else:
            y_idx.append(("literal", 1 if pos_w > 0 else 0))
        eff = [s[i] if h[i] else 0 for i in range(2)]
        if size == 2:
            row = np.asarray(eff, _F32)
            z[r] = _transform(row[None], post)[0] if post != "NONE" else row
        elif post == "PROBIT":
            z[r, 0] = _probit(np.asarray([eff[0]], _F32))[0]
        elif extra >= 0:
            z[r] = _second_class(np.asarray([eff[0]], _F32), post, extra)[0]
        else:
            z[r, 0] = eff[0]
    return y_idx, z


@register("TreeEnsembleClassifier", since=1, domain=ML_DOMAIN)
@register("TreeEnsembleClassifier", since=3, domain=ML_DOMAIN)
def tree_ensemble_classifier(x, *, base_values=None, base_values_as_tensor=None,
                             class_ids=None, class_nodeids=None, class_treeids=None,
                             class_weights=None, class_weights_as_tensor=None,
                             classlabels_int64s=None, classlabels_strings=None,
                             nodes_falsenodeids=None, nodes_featureids=None,
                             nodes_hitrates=None, nodes_hitrates_as_tensor=None,
                             nodes_missing_value_tracks_true=None, nodes_modes=None,
                             nodes_nodeids=None, nodes_treeids=None, nodes_truenodeids=None,
                             nodes_values=None, nodes_values_as_tensor=None,
                             post_transform="NONE"):
    """Per-class sums of leaf weights plus base values; the label is the best class. The
    binary conventions are onnxruntime's: when all weights go to one class the scores are
    [1 - p, p] (positive weights, threshold 0.5) or [-s, s] (threshold 0)."""
    x = _tree_input(x)
    dt = _threshold_dtype(x)
    labels, is_string = _labels(classlabels_int64s, classlabels_strings)
    n_classes = len(labels)
    if n_classes == 0:
        raise ValueError("classlabels_int64s or classlabels_strings is required")
    cw = _tensor_or_list(class_weights, class_weights_as_tensor, dt)
    forest = _forest_from_lists(
        dt, nodes_treeids or [], nodes_nodeids or [], nodes_modes or [],
        nodes_featureids or [], _tensor_or_list(nodes_values, nodes_values_as_tensor, dt),
        nodes_truenodeids or [], nodes_falsenodeids or [], nodes_missing_value_tracks_true,
        class_treeids or [], class_nodeids or [], class_ids or [], cw)
    base = _tensor_or_list(base_values, base_values_as_tensor, dt)
    binary_case = n_classes == 2 and len(set(int(c) for c in (class_ids or []))) == 1
    positive = bool(np.all(cw >= 0))
    leaves = forest.leaves(_compare_input(x, dt))
    if n_classes == 1:
        score, _ = _accumulate(forest, leaves, 1, "SUM")
        s = score[:, 0]
        if base.size == 2:
            s = (s + base[1]).astype(dt)
        elif base.size == 1:
            s = (s + base[0]).astype(dt)
        # onnxruntime's non-binary fallback: the literal label 1 or 0 (an index for strings).
        lit = [1 if v > 0 else 0 for v in s]
        y = _label_array([labels[min(v, n_classes - 1)] if is_string else v for v in lit],
                         is_string)
        z = s.astype(_F32).reshape(-1, 1)
        if post_transform == "PROBIT":
            z = _probit(z)
        return y, z
    score, has = _accumulate(forest, leaves, n_classes, "SUM")
    y_idx, z = _classify_rows(score, has, base, labels, n_classes, binary_case, positive,
                              post_transform)
    out = []
    for item in y_idx:
        if isinstance(item, tuple):
            kind, v = item
            if kind == "label" or is_string:
                out.append(labels[v])
            else:
                out.append(v)  # onnxruntime's literal 1/0 for int labels
        else:
            out.append(labels[int(item)])
    return _label_array(out, is_string), z.astype(_F32)


# --------------------------------------------------------------------------------------------
# Feature transforms


@register("Scaler", since=1, domain=ML_DOMAIN)
def scaler(x, *, offset=None, scale=None):
    """(X - offset) * scale per feature (or with one value for all), in float."""
    x = np.asarray(x)
    xf = x.astype(_F32)
    off = np.asarray(offset if offset else [0.0], _F32)
    sc = np.asarray(scale if scale else [1.0], _F32)
    return ((xf - off) * sc).astype(_F32)


@register("Normalizer", since=1, domain=ML_DOMAIN)
def normalizer(x, *, norm="MAX"):
    """Each row divided by its max, L1 or L2 norm, in float."""
    x = np.asarray(x)
    xf = x.astype(_F32)
    rows = xf.reshape(1, -1) if xf.ndim == 1 else xf
    with np.errstate(divide="ignore", invalid="ignore"):
        if norm == "MAX":
            out = rows / rows.max(axis=1, keepdims=True)
        elif norm == "L1":
            out = rows / np.abs(rows).sum(axis=1, keepdims=True, dtype=_F32)
        elif norm == "L2":
            out = rows / np.sqrt((rows * rows).sum(axis=1, keepdims=True, dtype=_F32))
        else:
            raise ValueError(f"unknown norm {norm!r}")
    return out.astype(_F32).reshape(xf.shape)


@register("Binarizer", since=1, domain=ML_DOMAIN)
def binarizer(x, *, threshold=0.0):
    x = np.asarray(x)
    return np.where(x > x.dtype.type(threshold), 1, 0).astype(x.dtype)


@register("Imputer", since=1, domain=ML_DOMAIN)
def imputer(x, *, imputed_value_floats=None, imputed_value_int64s=None,
            replaced_value_float=0.0, replaced_value_int64=0):
    """Replaces ``replaced_value`` (NaN matches NaN) by one value or one per feature."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        fill = np.asarray(imputed_value_floats or [], x.dtype)
        target = x.dtype.type(replaced_value_float)
        hit = np.isnan(x) if np.isnan(target) else (x == target)
    else:
        fill = np.asarray(imputed_value_int64s or [], x.dtype)
        hit = x == x.dtype.type(replaced_value_int64)
    if fill.size == 0:
        raise ValueError("Imputer needs imputed values")
    if fill.size > 1 and (x.ndim == 0 or fill.size != x.shape[-1]):
        raise ValueError("imputed values must be one or one per feature")
    return np.where(hit, fill if fill.size > 1 else fill[0], x).astype(x.dtype)


@register("ArrayFeatureExtractor", since=1, domain=ML_DOMAIN)
def array_feature_extractor(x, y):
    """X[..., indices]; a 1-D X gives a [1, len(indices)] result (onnxruntime)."""
    x = np.asarray(x)
    idx = np.asarray(y).astype(np.int64).reshape(-1)
    if x.ndim == 0:
        raise ValueError("ArrayFeatureExtractor needs an input of rank 1 or more")
    last = x.shape[-1]
    if ((idx < 0) | (idx >= last)).any():
        raise ValueError(f"indices out of range [0, {last})")
    out = np.take(x, idx, axis=-1)
    if x.ndim == 1:
        out = out.reshape(1, -1)
    return out


@register("OneHotEncoder", since=1, domain=ML_DOMAIN)
def one_hot_encoder(x, *, cats_int64s=None, cats_strings=None, zeros=1):
    """X.shape + [len(categories)] float one-hot rows; unknown values are all-zero rows
    (or an error when ``zeros`` is 0)."""
    x = np.asarray(x)
    if cats_strings:
        cats = {s: i for i, s in reversed(list(enumerate(cats_strings)))}
        keys = [str(v) for v in x.ravel()]
        n = len(cats_strings)
    else:
        cats = {int(c): i for i, c in reversed(list(enumerate(cats_int64s or [])))}
        # Float inputs are matched after truncation to int64 (onnxruntime casts them).
        keys = [int(v) for v in x.ravel()]
        n = len(cats_int64s or [])
    out = np.zeros((len(keys), n), _F32)
    for i, key in enumerate(keys):
        j = cats.get(key)
        if j is None:
            if not zeros:
                raise ValueError(f"OneHotEncoder: unknown category {key!r}")
            continue
        out[i, j] = 1
    return out.reshape(x.shape + (n,))


@register("FeatureVectorizer", since=1, domain=ML_DOMAIN)
def feature_vectorizer(*inputs, inputdimensions=None):
    """Concatenates the inputs' features ([N, d_i] each, cut or zero-padded to
    inputdimensions[i]) into one [N, sum(d_i)] float tensor."""
    dims = [int(d) for d in (inputdimensions or [])]
    if len(dims) != len(inputs):
        raise ValueError("inputdimensions must give one size per input")
    arrays = [np.asarray(a) for a in inputs]
    n = 1
    for a in arrays:
        if a.ndim >= 2:
            n = a.shape[0]
            break
    parts = []
    for a, d in zip(arrays, dims):
        rows = a.reshape(1, -1) if a.ndim <= 1 else a.reshape(a.shape[0], -1)
        rows = rows.astype(_F32)
        if rows.shape[1] >= d:
            part = rows[:, :d]
        else:
            part = np.zeros((rows.shape[0], d), _F32)
            part[:, :rows.shape[1]] = rows
        parts.append(np.broadcast_to(part, (n, d)) if part.shape[0] != n else part)
    return np.concatenate(parts, axis=1).astype(_F32) if parts else np.zeros((n, 0), _F32)


# --------------------------------------------------------------------------------------------
# Encoders and mappers


@register("CategoryMapper", since=1, domain=ML_DOMAIN)
def category_mapper(x, *, cats_int64s=None, cats_strings=None, default_int64=-1,
                    default_string="_Unused"):
    """strings -> int64 or int64 -> strings through the paired category lists."""
    x = np.asarray(x)
    ints = [int(v) for v in (cats_int64s or [])]
    strs = list(cats_strings or [])
    if len(ints) != len(strs):
        raise ValueError("cats_int64s and cats_strings must have the same length")
    if x.dtype == object or x.dtype.kind in "US":
        table = dict(zip(strs, ints))
        out = [table.get(str(v), int(default_int64)) for v in x.ravel()]
        return np.asarray(out, np.int64).reshape(x.shape)
    table = dict(zip(ints, strs))
    out = [table.get(int(v), default_string) for v in x.ravel()]
    return np.array(out + [None], dtype=object)[:-1].reshape(x.shape)


def _obj_array(values, shape) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr.reshape(shape)


@register("LabelEncoder", since=1, domain=ML_DOMAIN)
def label_encoder_1(x, *, classes_strings=None, default_int64=-1, default_string="_Unused"):
    """int64 -> classes_strings[x] or string -> its index in classes_strings."""
    x = np.asarray(x)
    classes = list(classes_strings or [])
    if x.dtype == object or x.dtype.kind in "US":
        table = {s: i for i, s in enumerate(classes)}  # the last duplicate wins
        out = [table.get(str(v), int(default_int64)) for v in x.ravel()]
        return np.asarray(out, np.int64).reshape(x.shape)
    out = [classes[int(v)] if 0 <= int(v) < len(classes) else default_string
           for v in x.ravel()]
    return _obj_array(out, x.shape)


def _encoder_lists(kind: str, attrs: dict, tensor):
    """The key or value list from keys_*/values_* (or the opset-4 tensor form) with its
    numpy dtype."""
    if attrs.get(f"{kind}_strings"):
        return list(attrs[f"{kind}_strings"]), np.dtype(object)
    if attrs.get(f"{kind}_int64s"):
        return [int(v) for v in attrs[f"{kind}_int64s"]], np.dtype(np.int64)
    if attrs.get(f"{kind}_floats"):
        return list(np.asarray(attrs[f"{kind}_floats"], _F32)), np.dtype(_F32)
    if tensor is not None:
        t = np.asarray(tensor).reshape(-1)
        if t.dtype == object or t.dtype.kind in "US":
            return [str(v) for v in t], np.dtype(object)
        return list(t), t.dtype
    return [], None


class _NaNKey:
    """Dictionary key under which every NaN is the same key (opset 4)."""

    def __hash__(self):
        return 0x7FF8

    def __eq__(self, other):
        return isinstance(other, _NaNKey)


_NAN = _NaNKey()


def _key(v, nan_equal: bool):
    if isinstance(v, str):
        return v
    if isinstance(v, (float, np.floating)):
        if nan_equal and np.isnan(v):
            return _NAN
        return float(v)
    return int(v)


def _label_encode(x, attrs, nan_equal, keys_tensor=None, values_tensor=None,
                  default_tensor=None):
    x = np.asarray(x)
    keys, _ = _encoder_lists("keys", attrs, keys_tensor)
    values, vdtype = _encoder_lists("values", attrs, values_tensor)
    if vdtype is None:
        raise ValueError("LabelEncoder needs values")
    if len(keys) != len(values):
        raise ValueError("keys and values must have the same length")
    table = {}
    for k, v in zip(keys, values):
        table.setdefault(_key(k, nan_equal), v)  # the first duplicate wins (onnxruntime)
    if default_tensor is not None and np.asarray(default_tensor).size:
        default = np.asarray(default_tensor).reshape(-1)[0]
        if isinstance(default, bytes):
            default = default.decode()
    elif vdtype == object:
        default = attrs.get("default_string", "_Unused")
    elif vdtype.kind in "iu":
        default = attrs.get("default_int64", -1)
    else:
        default = attrs.get("default_float", -0.0)
    src = x.ravel()
    if x.dtype == object or x.dtype.kind in "US":
        out = [table.get(str(v), default) for v in src]
    else:
        out = [table.get(_key(v, nan_equal), default) for v in src]
    if vdtype == object:
        return _obj_array(out, x.shape)
    return np.asarray(out, dtype=vdtype).reshape(x.shape)


@register("LabelEncoder", since=2, domain=ML_DOMAIN)
def label_encoder_2(x, *, default_float=-0.0, default_int64=-1, default_string="_Unused",
                    keys_floats=None, keys_int64s=None, keys_strings=None, values_floats=None,
                    values_int64s=None, values_strings=None):
    """keys_* -> values_*; absent keys map to the default of the value type."""
    attrs = dict(default_float=default_float, default_int64=default_int64,
                 default_string=default_string, keys_floats=keys_floats,
                 keys_int64s=keys_int64s, keys_strings=keys_strings,
                 values_floats=values_floats, values_int64s=values_int64s,
                 values_strings=values_strings)
    return _label_encode(x, attrs, nan_equal=False)


@register("LabelEncoder", since=4, domain=ML_DOMAIN)
def label_encoder_4(x, *, default_float=-0.0, default_int64=-1, default_string="_Unused",
                    default_tensor=None, keys_floats=None, keys_int64s=None,
                    keys_strings=None, keys_tensor=None, values_floats=None,
                    values_int64s=None, values_strings=None, values_tensor=None):
    """Opset 4: keys/values/default may be tensors (any of the listed types) and a NaN key
    matches NaN inputs."""
    attrs = dict(default_float=default_float, default_int64=default_int64,
                 default_string=default_string, keys_floats=keys_floats,
                 keys_int64s=keys_int64s, keys_strings=keys_strings,
                 values_floats=values_floats, values_int64s=values_int64s,
                 values_strings=values_strings)
    return _label_encode(x, attrs, True, keys_tensor, values_tensor, default_tensor)


# --------------------------------------------------------------------------------------------
# Maps


@register("ZipMap", since=1, domain=ML_DOMAIN, dynamic_shape=True)
def zip_map(x, *, classlabels_int64s=None, classlabels_strings=None):
    """[N, C] scores -> a list of N dicts {label: score} (python floats)."""
    x = np.asarray(x, _F32)
    if classlabels_strings:
        labels = list(classlabels_strings)
    else:
        labels = [int(v) for v in (classlabels_int64s or [])]
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    if rows.ndim != 2 or rows.shape[1] != len(labels):
        raise ValueError(f"ZipMap: {x.shape} scores for {len(labels)} labels")
    # One output, a sequence: wrapped so that the list is not taken as several outputs.
    return ([dict(zip(labels, (float(v) for v in row))) for row in rows],)


def _map_value_dtype(values) -> np.dtype:
    """The tensor type of a python map's values: numpy scalars keep theirs, python ints are
    int64, python floats float32 (the usual map(·, float)), strings object."""
    for v in values:
        if isinstance(v, str):
            return np.dtype(object)
        if isinstance(v, np.generic):
            return v.dtype
        if isinstance(v, (bool, int)):
            return np.dtype(np.int64)
        return np.dtype(_F32)
    return np.dtype(_F32)


@register("DictVectorizer", since=1, domain=ML_DOMAIN)
def dict_vectorizer(x, *, int64_vocabulary=None, string_vocabulary=None):
    """A map -> [1, len(vocabulary)] tensor of its values in vocabulary order (absent keys
    give 0, or '' for strings)."""
    if not isinstance(x, dict):
        raise TypeError("DictVectorizer takes a map (a python dict)")
    if string_vocabulary:
        vocab = [str(v) for v in string_vocabulary]
        keys = {str(k): v for k, v in x.items()}
    else:
        vocab = [int(v) for v in (int64_vocabulary or [])]
        keys = {int(k): v for k, v in x.items()}
    dtype = _map_value_dtype(x.values())
    if dtype == object:
        return _obj_array([str(keys.get(k, "")) for k in vocab], (1, len(vocab)))
    out = np.zeros((1, len(vocab)), dtype)
    for i, k in enumerate(vocab):
        if k in keys:
            out[0, i] = keys[k]
    return out


def _float_to_string(v) -> str:
    return "%f" % float(np.float32(v))  # C++ std::to_string(float)


_NUM_PREFIX = re.compile(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)",
                         re.IGNORECASE)
_INT_PREFIX = re.compile(r"\s*[+-]?\d+")


def _stof(v: str):
    """C++ std::stof: the longest numeric prefix."""
    m = _NUM_PREFIX.match(v)
    if not m:
        raise ValueError(f"CastMap: {v!r} is not a number")
    return _F32(float(m.group(0)))


def _stoll(v: str) -> int:
    m = _INT_PREFIX.match(v)
    if not m:
        raise ValueError(f"CastMap: {v!r} is not an integer")
    return int(m.group(0))


@register("CastMap", since=1, domain=ML_DOMAIN)
def cast_map(x, *, cast_to="TO_FLOAT", map_form="DENSE", max_map=1):
    """map(int64, string|float) -> [1, M]: the values in key order (DENSE) or placed at
    their key's index up to max_map with padding (SPARSE: 0, or '0.f' for strings)."""
    if not isinstance(x, dict):
        raise TypeError("CastMap takes a map (a python dict)")
    items = sorted((int(k), v) for k, v in x.items())
    if cast_to == "TO_FLOAT":
        conv = (lambda v: _stof(v) if isinstance(v, str) else _F32(v))
        pad, dtype = _F32(0), np.dtype(_F32)
    elif cast_to == "TO_INT64":
        conv = (lambda v: _stoll(v) if isinstance(v, str) else int(np.float32(v)))
        pad, dtype = 0, np.dtype(np.int64)
    elif cast_to == "TO_STRING":
        conv = (lambda v: v if isinstance(v, str) else _float_to_string(v))
        pad, dtype = "0.f", np.dtype(object)
    else:
        raise ValueError(f"unknown cast_to {cast_to!r}")
    if map_form == "DENSE":
        vals = [conv(v) for _, v in items]
    elif map_form == "SPARSE":
        if items and items[0][0] < 0:
            raise ValueError("CastMap: negative keys cannot be placed in a SPARSE map")
        table = dict(items)
        vals = [conv(table[i]) if i in table else pad for i in range(int(max_map))]
    else:
        raise ValueError(f"unknown map_form {map_form!r}")
    if dtype == object:
        return _obj_array(vals, (1, len(vals)))
    return np.asarray(vals, dtype).reshape(1, len(vals))
