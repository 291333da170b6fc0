"""Loading: path, bytes, ModelProto; hostile and broken models become typed errors."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import InferenceSession
from runtime.errors import (FerryError, InvalidGraph, InvalidProtobuf, NoSuchFile, UnsafeModel)
from runtime.model import load_model
from tests.conftest import make_model


def test_path_bytes_and_proto_load_alike(tmp_path, chain_model):
    path = tmp_path / "m.onnx"
    onnx.save(chain_model, path)
    x = np.ones((2, 4), np.float32)
    results = [InferenceSession(src, providers=["cpu"]).run(None, {"x": x})[0]
               for src in (str(path), path, chain_model.SerializeToString(), chain_model)]
    for r in results[1:]:
        np.testing.assert_array_equal(results[0], r)


def test_missing_file():
    with pytest.raises(NoSuchFile):
        InferenceSession("/nonexistent/model.onnx")


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage\xff" * 10, b"not a model at all"])
def test_garbage_bytes(data):
    with pytest.raises((InvalidProtobuf, InvalidGraph)):
        InferenceSession(data)


def test_truncated_model(chain_model):
    data = chain_model.SerializeToString()
    for cut in (1, len(data) // 3, len(data) // 2, len(data) - 3):
        with pytest.raises(FerryError):
            InferenceSession(data[:cut])


def test_wrong_argument_type():
    with pytest.raises(FerryError):
        InferenceSession(12345)


def test_cycle_is_refused():
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="n1"),
             helper.make_node("Relu", ["a"], ["b"], name="n2"),
             helper.make_node("Add", ["x", "b"], ["y"], name="n3")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    with pytest.raises(InvalidGraph):
        InferenceSession(model.SerializeToString())


def test_undefined_input_name_is_refused():
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="n")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    with pytest.raises(InvalidGraph):
        InferenceSession(model.SerializeToString())


def test_duplicate_output_names_are_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="a"),
             helper.make_node("Neg", ["x"], ["y"], name="b")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    with pytest.raises(InvalidGraph):
        InferenceSession(model.SerializeToString())


def test_unknown_opset_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])],
                       opset=99)
    with pytest.raises(InvalidGraph, match="opset 99"):
        InferenceSession(model.SerializeToString())


def test_raw_data_size_mismatch_is_refused(chain_model):
    model = onnx.ModelProto()
    model.CopyFrom(chain_model)
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    with pytest.raises(InvalidGraph, match="raw data"):
        InferenceSession(model.SerializeToString())


def test_huge_declared_tensor_is_refused_before_allocating():
    t = onnx.TensorProto()
    t.name, t.data_type = "w", TensorProto.FLOAT
    t.dims.extend([1 << 20, 1 << 20])
    t.raw_data = b"\0" * 16
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsafeModel):
        load_model(model.SerializeToString(), memory_limit=1 << 30)


def _external_model(folder, location):
    w = np.arange(4, dtype=np.float32)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(w.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path, w


def test_external_data_inside_the_folder_loads(tmp_path):
    path, w = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    sess = InferenceSession(path)
    np.testing.assert_array_equal(sess.run(None, {"x": np.ones(4, np.float32)})[0], w + 1)


def test_external_data_subfolder_loads(tmp_path):
    (tmp_path / "data").mkdir()
    path, w = _external_model(tmp_path, "data/w.bin")
    (tmp_path / "data" / "w.bin").write_bytes(w.tobytes())
    InferenceSession(path)


@pytest.mark.parametrize("location", ["/etc/passwd", "../secret.bin", "data/../../secret.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    path, _ = _external_model(inner, location)
    with pytest.raises(UnsafeModel):
        InferenceSession(path)


def test_external_data_symlink_leaving_the_folder_is_refused(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    os.symlink(tmp_path / "secret.bin", inner / "w.bin")
    path, _ = _external_model(inner, "w.bin")
    with pytest.raises(UnsafeModel, match="outside"):
        InferenceSession(path)


def test_external_data_missing_file(tmp_path):
    path, _ = _external_model(tmp_path, "absent.bin")
    with pytest.raises(NoSuchFile):
        InferenceSession(path)


def test_external_data_too_short(tmp_path):
    path, w = _external_model(tmp_path, "w.bin")
    (tmp_path / "w.bin").write_bytes(w.tobytes()[:8])
    with pytest.raises(InvalidGraph):
        InferenceSession(path)


def test_external_data_from_bytes_needs_a_folder(tmp_path):
    path, w = _external_model(tmp_path, "w.bin")
    (tmp_path / "w.bin").write_bytes(w.tobytes())
    with open(path, "rb") as f:
        data = f.read()
    with pytest.raises(UnsafeModel, match="folder"):
        InferenceSession(data)
    from runtime import SessionOptions

    so = SessionOptions()
    so.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                str(tmp_path))
    InferenceSession(data, so)


def test_local_functions_are_inlined():
    fn = helper.make_function("my.fn", "AddRelu", ["a", "b"], ["c"],
                              [helper.make_node("Add", ["a", "b"], ["s"]),
                               helper.make_node("Relu", ["s"], ["c"])],
                              [helper.make_opsetid("", 17)])
    node = helper.make_node("AddRelu", ["x", "x"], ["y"], domain="my.fn")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    model = helper.make_model(graph, functions=[fn], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("my.fn", 1)])
    sess = InferenceSession(model.SerializeToString())
    x = np.array([-1, 0, 2], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(2 * x, 0))
