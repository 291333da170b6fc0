"""Models made by real exporters, run by ferry and by onnxruntime on the same inputs.

- PyTorch: the TorchScript exporter (``dynamo=False``) and the dynamo exporter (``dynamo=True``,
  needs onnxscript): a small CNN, a transformer encoder layer, an LSTM.
- skl2onnx: scaler + logistic regression, random forest, SVC, one-hot + column transformer, all
  with their ZipMap probability outputs.
- onnxruntime.quantization: static QDQ and QOperator, dynamic, on a small float model built here.

Every exported model has a symbolic batch (and sequence) dimension, exercised by running two
different sizes. Tolerances are stated per family next to the comparisons. tf2onnx and
paddle2onnx are not covered: tf2onnx needs TensorFlow at import time and paddle2onnx pins
onnx<=1.17 (it would downgrade the oracle).
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime import InferenceSession

ort = pytest.importorskip("onnxruntime")


def _ort_session(model_bytes: bytes, optimize: bool = True):
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _both(model_bytes: bytes, feeds: dict, ort_optimize: bool = True):
    """(ferry outputs, onnxruntime outputs) for the same feeds."""
    got = InferenceSession(model_bytes, providers=["cpu"]).run(None, feeds)
    want = _ort_session(model_bytes, ort_optimize).run(None, feeds)
    return got, want


def _symbolic_dims(model_bytes: bytes) -> list[list]:
    m = onnx.load_from_string(model_bytes)
    inits = {i.name for i in m.graph.initializer}
    return [[d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
            for vi in m.graph.input if vi.name not in inits]


# =================================================================================================
# PyTorch
# =================================================================================================

@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch


def _make_torch_models(torch):
    nn = torch.nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 12, 3, padding=1, stride=2)
            self.avg = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn(self.conv1(x))))
            x = torch.relu(self.conv2(x))
            return self.fc(torch.flatten(self.avg(x), 1))

    class LSTMHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out)

    class Encoder(nn.Module):
        """A TransformerEncoderLayer called with explicit arguments: traced bare, the
        TorchScript exporter turns its default ``is_causal=False`` into a tensor and fails."""

        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32,
                                                    dropout=0.0, batch_first=True)

        def forward(self, x):
            return self.layer(x, src_mask=None, is_causal=False)

    cnn = SmallCNN()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        cnn.bn.running_mean.uniform_(-0.5, 0.5)
        cnn.bn.running_var.uniform_(0.5, 2.0)
        cnn.bn.weight.uniform_(0.5, 1.5)
        cnn.bn.bias.uniform_(-0.2, 0.2)
    return {
        # name: (module, example input, symbolic dims of input 0, run shapes)
        "cnn": (cnn.eval(), torch.randn(2, 3, 16, 16), {0: "batch"},
                [(1, 3, 16, 16), (4, 3, 16, 16)]),
        "transformer": (Encoder().eval(), torch.randn(2, 5, 16), {0: "batch", 1: "seq"},
                        [(1, 5, 16), (3, 9, 16)]),
        "lstm": (LSTMHead().eval(), torch.randn(2, 5, 8), {0: "batch", 1: "seq"},
                 [(1, 4, 8), (3, 7, 8)]),
    }


def _cache_torchlib_registry():
    """The dynamo exporter rebuilds its onnxscript op registry (seconds) on every export; with no
    custom translation table it is the same each time, so build it once for this module."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return None
    original = _registration.ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        return None
    cache: dict = {}

    def cached(cls, opset_version=None, **kwargs):
        key = (opset_version, tuple(sorted(kwargs.items())))
        if key not in cache:
            args = {} if opset_version is None else {"opset_version": opset_version}
            cache[key] = original.__func__(cls, **args, **kwargs)
        return cache[key]

    _registration.ONNXRegistry.from_torchlib = classmethod(cached)
    return lambda: setattr(_registration.ONNXRegistry, "from_torchlib", original)


@pytest.fixture(scope="module")
def torch_exports(torch):
    """Each model exported once per exporter: {(exporter, name): model bytes or skip reason}."""
    models = _make_torch_models(torch)
    exports: dict = {}
    for name, (module, example, dims, _) in models.items():
        dims = _TORCHSCRIPT_OVERRIDES.get(name, (dims,))[0]
        buf = io.BytesIO()
        # Not under no_grad: inference mode would take TransformerEncoderLayer's fused fast
        # path (aten::_transformer_encoder_layer_fwd), which no ONNX exporter translates.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buf, dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=17,
                              dynamic_axes={"x": dims, "y": dims})
        exports[("torchscript", name)] = buf.getvalue()
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        for name in models:
            exports[("dynamo", name)] = "onnxscript is not installed"
        return exports
    restore = _cache_torchlib_registry()
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export",
                                            "onnxscript", "torch")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        for name, (module, example, dims, _) in models.items():
            shapes = ({axis: torch.export.Dim(label, min=1, max=64)
                       for axis, label in dims.items()},)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(module, (example,), dynamo=True, input_names=["x"],
                                            output_names=["y"], dynamic_shapes=shapes,
                                            verbose=False)
            exports[("dynamo", name)] = program.model_proto.SerializeToString()
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
        if restore is not None:
            restore()
    return exports


# The TorchScript exporter traces nn.MultiheadAttention's head split with the example's sequence
# length baked into a Reshape target (onnxruntime fails on another length too): there only the
# batch is symbolic.
_TORCHSCRIPT_OVERRIDES = {"transformer": ({0: "batch"}, [(1, 5, 16), (3, 5, 16)])}

# Float32 models of this size: kernels may sum in another order than onnxruntime's.
_TORCH_TOL = {"cnn": (1e-4, 1e-5), "transformer": (1e-4, 1e-4), "lstm": (1e-4, 1e-5)}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["cnn", "transformer", "lstm"])
def test_pytorch_export_matches_ort(torch, torch_exports, exporter, name):
    data = torch_exports[(exporter, name)]
    if isinstance(data, str):
        pytest.skip(data)
    _, _, dims, run_shapes = _make_torch_models(torch)[name]
    if exporter == "torchscript" and name in _TORCHSCRIPT_OVERRIDES:
        dims, run_shapes = _TORCHSCRIPT_OVERRIDES[name]
    declared = _symbolic_dims(data)[0]
    for axis in dims:
        assert isinstance(declared[axis], str), f"axis {axis} is not symbolic: {declared}"
    rng = np.random.default_rng(1)
    rtol, atol = _TORCH_TOL[name]
    for shape in run_shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        got, want = _both(data, {"x": x})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol,
                                       err_msg=f"{exporter}/{name} at input shape {shape}")


# =================================================================================================
# skl2onnx
# =================================================================================================

@pytest.fixture(scope="module")
def skl():
    pytest.importorskip("sklearn")
    return pytest.importorskip("skl2onnx")


def _classification_data(n_classes=3, n=120, features=5, seed=0):
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=features, n_informative=4,
                               n_redundant=0, n_classes=n_classes, random_state=seed)
    return x.astype(np.float32), y


def _compare_classifier(data: bytes, feeds_list: list[dict]):
    """Labels equal; each ZipMap dict has the same keys and probabilities within 1e-5."""
    for feeds in feeds_list:
        got, want = _both(data, feeds)
        np.testing.assert_array_equal(got[0], want[0])
        assert isinstance(got[1], list) and len(got[1]) == len(want[1])
        for g, w in zip(got[1], want[1]):
            assert isinstance(g, dict) and set(g) == set(w)
            for k in w:
                assert abs(g[k] - w[k]) <= 1e-5 + 1e-4 * abs(w[k]), (k, g[k], w[k])


def _float_feeds(x, name="input"):
    return [{name: x[:1]}, {name: x[:17]}]


def test_skl2onnx_scaler_logistic_regression(skl):
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _classification_data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    onx = skl.convert_sklearn(pipe, initial_types=[("input", FloatTensorType([None, 5]))])
    _compare_classifier(onx.SerializeToString(), _float_feeds(x))
    # Without ZipMap: the probabilities as one float tensor.
    onx = skl.convert_sklearn(pipe, initial_types=[("input", FloatTensorType([None, 5]))],
                              options={id(pipe): {"zipmap": False}})
    for feeds in _float_feeds(x):
        got, want = _both(onx.SerializeToString(), feeds)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-5)


def test_skl2onnx_random_forest(skl):
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    x, y = _classification_data()
    rf = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(x, y)
    onx = skl.convert_sklearn(rf, initial_types=[("input", FloatTensorType([None, 5]))])
    _compare_classifier(onx.SerializeToString(), _float_feeds(x))


def test_skl2onnx_random_forest_regressor(skl):
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestRegressor

    x, _ = _classification_data()
    target = x @ np.arange(1, 6, dtype=np.float32)
    rf = RandomForestRegressor(n_estimators=6, max_depth=4, random_state=0).fit(x, target)
    onx = skl.convert_sklearn(rf, initial_types=[("input", FloatTensorType([None, 5]))])
    for feeds in _float_feeds(x):
        got, want = _both(onx.SerializeToString(), feeds)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


# SVC(probability=True) is deprecated in scikit-learn 1.9 but still what skl2onnx converts to the
# SVMClassifier probability path this test is about.
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly"])
def test_skl2onnx_svc(skl, kernel):
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.svm import SVC

    x, y = _classification_data()
    svc = SVC(kernel=kernel, probability=True, random_state=0, degree=2).fit(x, y)
    onx = skl.convert_sklearn(svc, initial_types=[("input", FloatTensorType([None, 5]))])
    _compare_classifier(onx.SerializeToString(), _float_feeds(x))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # skl2onnx reads SVC.probA_ (deprecated)
def test_skl2onnx_binary_svc_without_probabilities(skl):
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.svm import SVC

    x, y = _classification_data(n_classes=2)
    svc = SVC(kernel="rbf").fit(x, y)
    onx = skl.convert_sklearn(svc, initial_types=[("input", FloatTensorType([None, 5]))])
    _compare_classifier(onx.SerializeToString(), _float_feeds(x))


def _mixed_table(n=60, seed=0):
    """Two numeric and two string columns in one object array (no pandas needed)."""
    rng = np.random.default_rng(seed)
    table = np.empty((n, 4), dtype=object)
    table[:, 0] = rng.standard_normal(n).astype(np.float32)
    table[:, 1] = rng.standard_normal(n).astype(np.float32)
    table[:, 2] = np.array(["red", "green", "blue"], dtype=object)[rng.integers(0, 3, n)]
    table[:, 3] = np.array(["S", "M", "L", "XL"], dtype=object)[rng.integers(0, 4, n)]
    y = ((table[:, 0] > 0) ^ (table[:, 2] == "red")).astype(np.int64) + (table[:, 3] == "XL")
    return table, y


def test_skl2onnx_onehot_column_transformer(skl):
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    table, y = _mixed_table()
    pre = ColumnTransformer([
        ("num", StandardScaler(), [0, 1]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), [2, 3]),
    ])
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(table, y)
    # One graph input per column, in the column order the transformer indexes.
    onx = skl.convert_sklearn(pipe, initial_types=[
        ("a", FloatTensorType([None, 1])), ("b", FloatTensorType([None, 1])),
        ("color", StringTensorType([None, 1])), ("size", StringTensorType([None, 1]))])

    def feeds(rows, unknown=False):
        part = table[rows]
        color = part[:, 2:3].copy()
        if unknown:  # a category never seen in training: handle_unknown="ignore"
            color[0, 0] = "purple"
        return {"a": part[:, :1].astype(np.float32), "b": part[:, 1:2].astype(np.float32),
                "color": color, "size": part[:, 3:4].copy()}

    _compare_classifier(onx.SerializeToString(),
                        [feeds(slice(0, 1)), feeds(slice(0, 23)), feeds(slice(5, 9), True)])


# =================================================================================================
# onnxruntime.quantization
# =================================================================================================

def _float_model() -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> Flatten -> MatMul -> Add -> Relu -> Gemm, batch symbolic."""
    rng = np.random.default_rng(0)
    init = [
        ("conv_w", rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3),
        ("conv_b", rng.standard_normal(6).astype(np.float32) * 0.1),
        ("mm_w", rng.standard_normal((6 * 4 * 4, 16)).astype(np.float32) * 0.1),
        ("mm_b", rng.standard_normal(16).astype(np.float32) * 0.1),
        ("gemm_w", rng.standard_normal((4, 16)).astype(np.float32) * 0.2),
        ("gemm_b", rng.standard_normal(4).astype(np.float32) * 0.1),
        ("shape", np.array([0, -1], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "mm_w"], ["m"]),
        helper.make_node("Add", ["m", "mm_b"], ["a"]),
        helper.make_node("Relu", ["a"], ["h"]),
        helper.make_node("Gemm", ["h", "gemm_w", "gemm_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "float_model", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [onnx.numpy_helper.from_array(v, k) for k, v in init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _calibration_batches():
    rng = np.random.default_rng(3)
    return [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(8)]


@pytest.fixture(scope="module")
def quantized_models(tmp_path_factory):
    q = pytest.importorskip("onnxruntime.quantization")
    folder = tmp_path_factory.mktemp("quant")
    src = folder / "float.onnx"
    onnx.save(_float_model(), src)

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": b} for b in _calibration_batches()])

        def get_next(self):
            return next(self._it, None)

    out = {}
    # reduce_range: 7-bit weights. Without it onnxruntime's u8s8 integer kernels saturate their
    # 16-bit pair sums on AVX2 machines without VNNI and drift from the operators' definition by
    # tens of quanta (its quantizer documents this); ferry computes exactly either way.
    for fmt in ("QDQ", "QOperator"):
        for per_channel in (False, True):
            dst = folder / f"static_{fmt}_{per_channel}.onnx"
            q.quantize_static(str(src), str(dst), Reader(), quant_format=getattr(q.QuantFormat,
                                                                                 fmt),
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              per_channel=per_channel, reduce_range=True)
            out[f"static-{fmt}-{'per_channel' if per_channel else 'per_tensor'}"] = dst
    dst = folder / "static_QDQ_full_range.onnx"
    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                      per_channel=True)
    out["static-QDQ-full_range"] = dst
    for wt in ("QInt8", "QUInt8"):
        dst = folder / f"dynamic_{wt}.onnx"
        q.quantize_dynamic(str(src), str(dst), weight_type=getattr(q.QuantType, wt))
        out[f"dynamic-{wt}"] = dst
    return {k: onnx.load(str(v)) for k, v in out.items()}


# Where each quantizing op keeps the zero point that fixes its 8-bit output type.
_ZERO_POINT_INPUT = {"QuantizeLinear": 2, "QLinearConv": 7, "QLinearMatMul": 7, "QLinearAdd": 7,
                     "QLinearMul": 7, "QGemm": 8, "QLinearSigmoid": 4, "QLinearLeakyRelu": 4}


def _with_8bit_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, float]:
    """The model with every 8-bit tensor a quantizing op writes also exposed as a graph output
    (so the integer results themselves are compared), and the scale of the final
    DequantizeLinear (one quantum of the float output; 0 when there is none)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    outputs = {o.name for o in m.graph.output}
    last_scale = 0.0
    for node in m.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in outputs:
            last_scale = float(np.max(inits.get(node.input[1], np.zeros(1))))
        if node.op_type == "DynamicQuantizeLinear":
            elem = TensorProto.UINT8
        elif node.op_type in _ZERO_POINT_INPUT:
            idx = _ZERO_POINT_INPUT[node.op_type]
            zero = inits.get(node.input[idx]) if len(node.input) > idx else None
            elem = TensorProto.UINT8 if zero is None else \
                onnx.helper.np_dtype_to_tensor_dtype(zero.dtype)
        else:
            continue
        if node.output[0] not in outputs:
            outputs.add(node.output[0])
            m.graph.output.append(helper.make_tensor_value_info(node.output[0], elem, None))
    return m, last_scale


@pytest.mark.parametrize("kind", [
    "static-QDQ-per_tensor", "static-QDQ-per_channel", "static-QOperator-per_tensor",
    "static-QOperator-per_channel", "dynamic-QInt8", "dynamic-QUInt8", "static-QDQ-full_range"])
def test_quantized_model_matches_ort(quantized_models, kind):
    """Every model against onnxruntime; the full-range one (8-bit weights, on which onnxruntime's
    fused u8s8 kernels saturate, see above) against onnxruntime running the QDQ graph as written,
    with its graph optimizations off."""
    model, last_scale = _with_8bit_outputs(quantized_models[kind])
    data = model.SerializeToString()
    assert _symbolic_dims(data)[0][0] == "batch"
    names = [o.name for o in model.graph.output]
    assert len(names) > 1, "no 8-bit tensor exposed"
    rng = np.random.default_rng(7)
    # 8-bit tensors: equal up to one quantum (rounding ties). Float outputs: within one quantum
    # of the final DequantizeLinear (static); dynamic quantization ends in float arithmetic on
    # run-time scales, so there 2% of the output's range.
    for batch in (1, 5):
        x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
        got, want = _both(data, {"x": x}, ort_optimize=not kind.endswith("full_range"))
        for name, g, w in zip(names, got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, name
            if g.dtype in (np.uint8, np.int8):
                diff = np.abs(g.astype(np.int32) - w.astype(np.int32))
                assert diff.max(initial=0) <= 1, f"{kind}/{name}: off by {diff.max()} quanta"
            else:
                atol = last_scale if last_scale else 0.02 * float(np.max(np.abs(w)))
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol + 1e-6,
                                           err_msg=f"{kind}/{name} batch {batch}")


def test_quantized_models_use_quantized_ops(quantized_models):
    """Guard that the quantizer really produced integer ops (else the tests above are weak)."""
    ops = {k: {n.op_type for n in m.graph.node} for k, m in quantized_models.items()}
    assert "QuantizeLinear" in ops["static-QDQ-per_tensor"]
    assert {"QLinearConv", "QLinearMatMul"} & ops["static-QOperator-per_tensor"]
    assert {"MatMulInteger", "DynamicQuantizeLinear", "ConvInteger"} & ops["dynamic-QInt8"]
