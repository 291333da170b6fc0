"""The small models the onnx package ships (pytorch-converted, pytorch-operator, simple) run
with providers=["openvino", "cpu"] and compared with onnxruntime: partition boundaries on real
graphs, whatever OpenVINO takes."""

from __future__ import annotations

import onnx
import pytest

pytest.importorskip("openvino")

from runtime import InferenceSession
from tests.models.test_onnx_shipped_models import SKIP, _cases, _compare, _inputs

CASES = [c for c in _cases() if not c.values[0].startswith("light/")]  # light: other tests


@pytest.mark.parametrize("key,path,data_dir", CASES)
def test_matches_onnxruntime_with_openvino(key, path, data_dir):
    if key in SKIP:
        pytest.skip(SKIP[key])
    import onnxruntime as ort

    model = onnx.load(path)
    feeds = _inputs(model, data_dir)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    try:
        expected = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(
            None, feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime dropped opsets < 7
        pytest.skip(f"onnxruntime cannot run this model: {str(exc).splitlines()[0][:120]}")
    sess = InferenceSession(path, providers=["openvino", "cpu"])
    got = sess.run(None, feeds)
    assert len(got) == len(expected)
    for out, a, b in zip(sess.get_outputs(), got, expected):
        _compare(a, b, f"{key}:{out.name}")
