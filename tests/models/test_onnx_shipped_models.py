"""Every model the onnx package ships (backend/test/data: light, pytorch-converted,
pytorch-operator, simple) run by ferry and by onnxruntime on the same inputs.

Inputs come from each model's test_data_set_0 when present, else are generated from the
declared input types with a fixed seed. Models onnxruntime no longer loads (opsets < 7) are
compared with the outputs shipped beside them. A model is skipped only with a stated reason.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from runtime import InferenceSession
from tests.conftest import ONNX_DATA

SUITES = ["light", "pytorch-converted", "pytorch-operator", "simple"]

# Models we do not run, each with its reason.
SKIP = {
    "simple/test_gradient_of_add": "uses ai.onnx.preview.training Gradient, a training op "
                                   "(onnxruntime's inference build refuses it too)",
    "simple/test_gradient_of_add_and_mul": "uses ai.onnx.preview.training Gradient, a training "
                                           "op (onnxruntime's inference build refuses it too)",
}


def _cases():
    cases = []
    for suite in SUITES:
        root = os.path.join(ONNX_DATA, suite)
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if entry.endswith(".onnx"):
                cases.append(pytest.param(f"{suite}/{entry[:-5]}", path, None,
                                          id=f"{suite}/{entry[:-5]}"))
            elif os.path.isfile(os.path.join(path, "model.onnx")):
                data = os.path.join(path, "test_data_set_0")
                cases.append(pytest.param(f"{suite}/{entry}", os.path.join(path, "model.onnx"),
                                          data if os.path.isdir(data) else None,
                                          id=f"{suite}/{entry}"))
    return cases


def _load_pb(path: str, type_proto):
    which = type_proto.WhichOneof("value") if type_proto is not None else "tensor_type"
    with open(path, "rb") as f:
        data = f.read()
    if which == "sequence_type":
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        return [numpy_helper.to_array(t) for t in seq.tensor_values]
    if which == "optional_type":
        opt = onnx.OptionalProto()
        opt.ParseFromString(data)
        if opt.HasField("tensor_value"):
            return numpy_helper.to_array(opt.tensor_value)
        return None
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)


def _inputs(model: onnx.ModelProto, data_dir: str | None) -> dict:
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    if data_dir:
        files = sorted(glob.glob(os.path.join(data_dir, "input_*.pb")),
                       key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
        return {vi.name: _load_pb(f, vi.type) for vi, f in zip(graph_inputs, files)}
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in graph_inputs:
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[vi.name] = rng.random(shape).astype(dtype)
    return feeds


def _shipped_outputs(model: onnx.ModelProto, data_dir: str | None):
    if not data_dir:
        return None
    files = sorted(glob.glob(os.path.join(data_dir, "output_*.pb")),
                   key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    if len(files) != len(model.graph.output):
        return None
    return [_load_pb(f, vi.type) for vi, f in zip(model.graph.output, files)]


def _compare(ours, theirs, name: str):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), name
        for a, b in zip(ours, theirs):
            _compare(a, b, name)
        return
    ours = np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} vs {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{name}: dtype {ours.dtype} vs {theirs.dtype}"
    if theirs.dtype.kind in "fc":
        finite = np.abs(theirs[np.isfinite(theirs)])  # NaN/inf must match, not set the scale
        scale = float(finite.max()) if finite.size else 1.0
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5 * max(scale, 1.0),
                                   err_msg=name)
    else:
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


@pytest.mark.parametrize("key,path,data_dir", _cases())
def test_matches_onnxruntime(key, path, data_dir):
    if key in SKIP:
        pytest.skip(SKIP[key])
    import onnxruntime as ort

    model = onnx.load(path)
    feeds = _inputs(model, data_dir)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    try:
        ref_sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        expected = ref_sess.run(None, feeds)
    except Exception as exc:
        # onnxruntime 1.2x+ dropped opsets < 7: compare with the outputs shipped beside the
        # model (computed by the framework that exported it) instead.
        expected = _shipped_outputs(model, data_dir)
        if expected is None:
            pytest.skip("onnxruntime cannot run this model and no outputs ship with it: "
                        f"{str(exc).splitlines()[0][:160]}")
    sess = InferenceSession(path, providers=["cpu"])
    got = sess.run(None, feeds)
    assert len(got) == len(expected)
    for out, a, b in zip(sess.get_outputs(), got, expected):
        _compare(a, b, f"{key}:{out.name}")
    # a second run goes through the compiled plan where shapes allow: same answers
    again = sess.run(None, feeds)
    for out, a, b in zip(sess.get_outputs(), again, expected):
        _compare(a, b, f"{key}:{out.name} (second run)")
