"""Hostile and unusual inputs (issue 9): broken model bytes, malformed graphs, external data that
tries to leave its folder, allocation bombs under a memory cap, bad feeds and output names, odd
array layouts, concurrent runs, zero-size tensors, NaN/Inf, runs that never end, and soak runs
for leaks.

Extends tests/runtime/test_model_loading.py without repeating its cases. Expected values always
come from onnxruntime; only typed ferry errors (runtime.errors.FerryError) are acceptable
failures.
"""

from __future__ import annotations

import gc
import os
import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import InferenceSession, SessionOptions
from runtime.errors import (
    FerryError,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    MemoryLimitExceeded,
    NoSuchFile,
    UnsafeModel,
)
from tests.conftest import make_model, ort_run

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def _session(model, so=None):
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return InferenceSession(data, so, providers=["cpu"])


def _small_model():
    nodes = [helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    return make_model(nodes, [("x", F, ["N", 4])], [("y", F, ["N", 4])],
                      [("w", np.linspace(-1, 1, 4, dtype=np.float32))])


# ---- model bytes -----------------------------------------------------------------------------

def _other_protos():
    t = numpy_helper.from_array(np.ones((2, 2), np.float32), "t")
    g = _small_model().graph
    n = helper.make_node("Relu", ["x"], ["y"])
    return {"tensor_proto": t.SerializeToString(), "graph_proto": g.SerializeToString(),
            "node_proto": n.SerializeToString()}


@pytest.mark.parametrize("data", [
    b"\x00", b"\xff" * 64, b"\x08", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x3a\xff\xff\xff\xff\x0f", b"PK\x03\x04" + b"\0" * 60, b"\x89PNG\r\n\x1a\n" + b"\0" * 32,
    bytes(range(256)) * 4,
], ids=["nul", "ff", "lone-tag", "overlong-varint", "huge-length-prefix", "zip", "png", "ramp"])
def test_garbage_bytes_are_typed_errors(data):
    with pytest.raises((InvalidProtobuf, InvalidGraph)):
        _session(data)


@pytest.mark.parametrize("kind", ["tensor_proto", "graph_proto", "node_proto"])
def test_other_onnx_messages_are_not_models(kind):
    with pytest.raises(FerryError):
        _session(_other_protos()[kind])


def test_model_without_graph_is_refused():
    m = onnx.ModelProto()
    m.ir_version = 8
    m.opset_import.add().version = 17
    with pytest.raises(InvalidGraph):
        _session(m.SerializeToString())


@pytest.mark.parametrize("source", ["bytearray", "memoryview", "path"])
def test_empty_input_in_every_form(tmp_path, source):
    if source == "path":
        p = tmp_path / "empty.onnx"
        p.write_bytes(b"")
        data = str(p)
    else:
        data = bytearray() if source == "bytearray" else memoryview(b"")
    with pytest.raises(InvalidProtobuf, match="empty"):
        InferenceSession(data, providers=["cpu"])


@pytest.mark.parametrize("field", ["producer_name", "doc_string", "graph_name"])
def test_invalid_utf8_in_model_strings_is_loaded_or_a_typed_error(field):
    model = _small_model()
    if field == "graph_name":
        model.graph.name = "QQQQ"
    else:
        setattr(model, field, "QQQQ")
    data = model.SerializeToString().replace(b"QQQQ", b"\xf4\x80A\xff")
    try:
        sess = _session(data)
    except FerryError:
        return
    got = sess.run(None, {"x": np.ones((1, 4), np.float32)})[0]
    want = ort_run(_small_model(), {"x": np.ones((1, 4), np.float32)})[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("field", ["node_name", "node_doc_string", "metadata_value"])
def test_invalid_utf8_in_other_strings_is_loaded_or_a_typed_error(field):
    model = _small_model()
    if field == "node_name":
        model.graph.node[0].name = "QQQQ"
    elif field == "node_doc_string":
        model.graph.node[0].doc_string = "QQQQ"
    else:
        helper.set_model_props(model, {"key": "QQQQ"})
    data = model.SerializeToString().replace(b"QQQQ", b"\xf4\x80A\xff")
    try:
        sess = _session(data)
        sess.run(None, {"x": np.ones((1, 4), np.float32)})
        sess.get_modelmeta()
    except FerryError:
        pass


def test_every_truncation_is_a_typed_error_or_a_valid_model():
    """Cutting the bytes anywhere: a typed error, or (rarely) a smaller model that still loads."""
    data = _small_model().SerializeToString()
    for cut in range(len(data)):
        try:
            _session(data[:cut])
        except FerryError:
            pass


def test_model_path_is_a_folder(tmp_path):
    with pytest.raises(FerryError):
        InferenceSession(str(tmp_path), providers=["cpu"])


# ---- malformed graphs ------------------------------------------------------------------------

def test_node_reading_its_own_output_is_refused():
    nodes = [helper.make_node("Add", ["x", "a"], ["a"], name="self_loop"),
             helper.make_node("Relu", ["a"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_long_cycle_is_refused():
    # a1 -> a2 -> a3 -> a4 -> a1 (with a1 also reading x)
    nodes = [helper.make_node("Add", ["x", "a4"], ["a1"], name="n1"),
             helper.make_node("Relu", ["a1"], ["a2"], name="n2"),
             helper.make_node("Neg", ["a2"], ["a3"], name="n3"),
             helper.make_node("Abs", ["a3"], ["a4"], name="n4"),
             helper.make_node("Identity", ["a4"], ["y"], name="n5")]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_graph_output_never_produced_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2]), ("ghost", F, [2])])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_undefined_name_inside_a_subgraph_is_refused():
    body = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", F, [2])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", F, [2])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=other)]
    model = make_model(nodes, [("c", TensorProto.BOOL, []), ("x", F, [2])], [("y", F, [2])])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_duplicate_graph_inputs_are_refused():
    nodes = [helper.make_node("Add", ["x", "x"], ["y"])]
    model = make_model(nodes, [("x", F, [2]), ("x", F, [2])], [("y", F, [2])])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_duplicate_initializers_are_refused():
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])],
                       [("w", np.ones(2, np.float32)), ("w", np.zeros(2, np.float32))])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_node_output_shadowing_a_graph_input_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["x"], name="shadow"),
             helper.make_node("Identity", ["x"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_node_output_shadowing_an_initializer_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["w"], name="shadow"),
             helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32))])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_unknown_op_in_the_default_domain():
    nodes = [helper.make_node("NoSuchOperator", ["x"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    with pytest.raises(FerryError):
        _session(model)


def test_op_of_an_unknown_domain_names_the_op():
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])],
                       extra_opsets=[("com.example", 1)])
    with pytest.raises(FerryError, match="Frobnicate"):
        _session(model)


def test_op_newer_than_the_model_opset_is_refused():
    # Gelu exists only from opset 20: a model importing opset 17 must not run it.
    nodes = [helper.make_node("Gelu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], opset=17)
    with pytest.raises(FerryError):
        _session(model)


@pytest.mark.parametrize("domain,version", [("ai.onnx.ml", 99), ("", 0), ("", -3),
                                            ("com.microsoft", 1000)])
def test_bad_opset_versions_are_refused(domain, version):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2])],
                              [helper.make_tensor_value_info("y", F, [2])])
    imports = [helper.make_opsetid(domain, version)]
    if domain:
        imports.append(helper.make_opsetid("", 17))
    model = helper.make_model(graph, opset_imports=imports)
    with pytest.raises(InvalidGraph):
        _session(model)


def test_future_ir_version_is_a_typed_error():
    model = _small_model()
    model.ir_version = 999
    with pytest.raises(FerryError):
        _session(model)


@pytest.mark.parametrize("code", [29, 99])
@pytest.mark.parametrize("where", ["initializer", "constant", "input", "output"])
def test_unknown_element_type_is_a_typed_error(where, code):
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])], [("w", np.ones(2, np.float32))])
    if where == "initializer":
        model.graph.initializer[0].data_type = code
    elif where == "constant":
        t = model.graph.initializer.pop()
        t.data_type = code
        model.graph.node.insert(0, helper.make_node("Constant", [], ["w"], value=t))
    else:
        vi = model.graph.input[0] if where == "input" else model.graph.output[0]
        vi.type.tensor_type.elem_type = code
    with pytest.raises(FerryError):
        _session(model).run(None, {"x": np.ones(2, np.float32)})


def test_negative_dims_in_an_initializer_are_refused():
    t = onnx.TensorProto()
    t.name, t.data_type = "w", F
    t.dims.extend([-1, 4])
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [4])],
                              [helper.make_tensor_value_info("y", F, None)], [t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InvalidGraph):
        _session(model)


def test_huge_tensor_in_a_constant_attribute_is_refused():
    t = onnx.TensorProto()
    t.name, t.data_type = "c", F
    t.dims.extend([1 << 20, 1 << 20])
    t.raw_data = b"\0" * 8
    nodes = [helper.make_node("Constant", [], ["c"], value=t),
             helper.make_node("Add", ["x", "c"], ["y"])]
    model = make_model(nodes, [("x", F, [1])], [("y", F, None)])
    so = SessionOptions()
    so.memory_limit_bytes = 1 << 20
    with pytest.raises(FerryError):
        _session(model, so)


# ---- external data (extends test_model_loading.py) -------------------------------------------

def _external_model(folder, location, offset="0", length=None, in_constant=False):
    w = np.arange(4, dtype=np.float32)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location), ("offset", offset),
               ("length", str(w.nbytes) if length is None else length)]
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    if in_constant:
        nodes = [helper.make_node("Constant", [], ["w"], value=t),
                 helper.make_node("Add", ["x", "w"], ["y"])]
        inits = []
    else:
        nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
        inits = [t]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [4])],
                              [helper.make_tensor_value_info("y", F, [4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(folder, "model.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path, w


@pytest.fixture
def jail(tmp_path):
    """A model folder inside tmp_path, with a secret file beside (outside) it."""
    inner = tmp_path / "model"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    return inner


@pytest.mark.parametrize("location", [
    "..\\secret.bin", "data\\..\\..\\secret.bin", "C:/secret.bin", "C:\\secret.bin",
    "\\\\server\\share\\secret.bin", "//etc/passwd", "./../secret.bin", "data/./../../secret.bin",
])
def test_more_escaping_locations_are_refused(jail, location):
    (jail / "data").mkdir()
    path, _ = _external_model(jail, location)
    with pytest.raises((UnsafeModel, NoSuchFile)):
        InferenceSession(path, providers=["cpu"])


def test_symlinked_folder_leaving_the_model_folder_is_refused(jail):
    os.symlink(jail.parent, jail / "up")
    path, _ = _external_model(jail, "up/secret.bin")
    with pytest.raises(UnsafeModel):
        InferenceSession(path, providers=["cpu"])


def test_symlink_inside_the_folder_is_allowed(jail):
    w = np.arange(4, dtype=np.float32)
    (jail / "real.bin").write_bytes(w.tobytes())
    os.symlink(jail / "real.bin", jail / "link.bin")
    path, _ = _external_model(jail, "link.bin")
    out = InferenceSession(path, providers=["cpu"]).run(None, {"x": np.zeros(4, np.float32)})
    np.testing.assert_array_equal(out[0], w)


def test_escape_through_a_constant_attribute_is_refused(jail):
    path, _ = _external_model(jail, "../secret.bin", in_constant=True)
    with pytest.raises(UnsafeModel):
        InferenceSession(path, providers=["cpu"])


def test_external_data_in_a_constant_attribute_loads(jail):
    w = np.arange(4, dtype=np.float32)
    (jail / "w.bin").write_bytes(w.tobytes())
    path, _ = _external_model(jail, "w.bin", in_constant=True)
    out = InferenceSession(path, providers=["cpu"]).run(None, {"x": np.ones(4, np.float32)})
    np.testing.assert_array_equal(out[0], w + 1)


@pytest.mark.parametrize("offset,length", [("-4", "16"), ("0", "-16"), ("32", "16"),
                                           ("0", "99999999999999999999"), ("abc", "16"),
                                           ("0", "1e3")])
def test_bad_offsets_and_lengths_are_refused(jail, offset, length):
    (jail / "w.bin").write_bytes(b"\0" * 16)
    path, _ = _external_model(jail, "w.bin", offset=offset, length=length)
    with pytest.raises(InvalidGraph):
        InferenceSession(path, providers=["cpu"])


def test_location_that_is_a_folder_is_refused(jail):
    (jail / "w.bin").mkdir()
    path, _ = _external_model(jail, "w.bin")
    with pytest.raises(FerryError):
        InferenceSession(path, providers=["cpu"])


def test_location_with_a_nul_byte_is_refused(jail):
    path, _ = _external_model(jail, "w.bin\0../../secret.bin")
    with pytest.raises(FerryError):
        InferenceSession(path, providers=["cpu"])


def test_external_data_over_the_memory_cap_is_refused_before_reading(jail):
    (jail / "w.bin").write_bytes(b"\0" * 16)
    path, _ = _external_model(jail, "w.bin")
    so = SessionOptions()
    so.memory_limit_bytes = 8
    with pytest.raises(UnsafeModel):
        InferenceSession(path, so, providers=["cpu"])


# ---- allocation bombs under a memory cap -----------------------------------------------------

_CAP = 1 << 20          # 1 MiB cap on any tensor
_BOMB = 8192            # 8192 x 8192 float32 = 256 MiB: fits in RAM, far over the cap
_ALLOWED_PEAK = 32 << 20


def _bomb_cases():
    big = np.array([_BOMB, _BOMB], np.int64)
    return {
        "ConstantOfShape": (
            make_model([helper.make_node("ConstantOfShape", ["s"], ["y"])],
                       [("s", I64, [2])], [("y", F, None)]),
            {"s": big}),
        "Expand": (
            make_model([helper.make_node("Expand", ["x", "s"], ["y"])],
                       [("x", F, [1]), ("s", I64, [2])], [("y", F, None)]),
            {"x": np.ones(1, np.float32), "s": big}),
        "Tile": (
            make_model([helper.make_node("Tile", ["x", "r"], ["y"])],
                       [("x", F, [2, 2]), ("r", I64, [2])], [("y", F, None)]),
            {"x": np.ones((2, 2), np.float32), "r": big // 2}),
        "Range": (
            make_model([helper.make_node("Range", ["a", "b", "d"], ["y"])],
                       [("a", F, []), ("b", F, []), ("d", F, [])], [("y", F, None)]),
            {"a": np.array(0, np.float32), "b": np.array(_BOMB * _BOMB, np.float32),
             "d": np.array(1, np.float32)}),
        "Pad": (
            make_model([helper.make_node("Pad", ["x", "p"], ["y"])],
                       [("x", F, [1, 1]), ("p", I64, [4])], [("y", F, None)]),
            {"x": np.ones((1, 1), np.float32), "p": np.array([0, 0, _BOMB, _BOMB], np.int64)}),
        "Resize": (
            make_model([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest")],
                       [("x", F, [1, 1, 2, 2]), ("sc", F, [4])], [("y", F, None)]),
            {"x": np.ones((1, 1, 2, 2), np.float32),
             "sc": np.array([1, 1, _BOMB // 2, _BOMB // 2], np.float32)}),
    }


def _assert_refused_without_allocating(fn):
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(FerryError) as info:
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < _ALLOWED_PEAK, f"refused only after allocating {peak} bytes"
    return info.value


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand", "Tile", "Range", "Pad", "Resize"])
def test_allocation_bomb_at_run_time(op):
    model, feeds = _bomb_cases()[op]
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    sess = _session(model, so)
    err = _assert_refused_without_allocating(lambda: sess.run(None, feeds))
    assert isinstance(err, MemoryLimitExceeded), repr(err)


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand", "Tile", "Range", "Pad", "Resize"])
def test_allocation_bomb_from_constants(op):
    """Shape inputs that are initializers: the bomb may go off while folding constants."""
    model, feeds = _bomb_cases()[op]
    keep = [vi for vi in model.graph.input if vi.name == "x"]
    for name, value in feeds.items():
        if name != "x":
            model.graph.initializer.append(numpy_helper.from_array(value, name))
    del model.graph.input[:]
    model.graph.input.extend(keep)
    if not keep:
        model.graph.input.append(helper.make_tensor_value_info("z", F, [1]))
        model.graph.node.append(helper.make_node("Identity", ["z"], ["z_out"]))
        model.graph.output.append(helper.make_tensor_value_info("z_out", F, [1]))
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    run_feeds = {"x": feeds["x"]} if keep else {"z": np.ones(1, np.float32)}

    def build_and_run():
        _session(model, so).run(None, run_feeds)

    _assert_refused_without_allocating(build_and_run)


def _broadcast_bombs():
    big = _BOMB // 2  # 64-128 MiB: over the cap and the allowed peak, cheap while unfixed
    col = ("a", F, ["M", 1])
    row = ("b", F, [1, "N"])
    fcol, frow = np.ones((big, 1), np.float32), np.ones((1, big), np.float32)
    icol, irow = np.ones((big, 1), np.int64), np.ones((1, big), np.int64)
    return {
        "Where": (make_model([helper.make_node("Where", ["c", "a", "b"], ["y"])],
                             [("c", TensorProto.BOOL, ["M", 1]), row, ("a", F, [1])],
                             [("y", F, None)]),
                  {"c": np.ones((big, 1), bool), "b": frow, "a": np.ones(1, np.float32)}),
        "Add_int64": (make_model([helper.make_node("Add", ["a", "b"], ["y"])],
                                 [("a", I64, ["M", 1]), ("b", I64, [1, "N"])], [("y", I64, None)]),
                      {"a": icol, "b": irow}),
        "Equal": (make_model([helper.make_node("Equal", ["a", "b"], ["y"])], [col, row],
                             [("y", TensorProto.BOOL, None)]),
                  {"a": np.ones((2 * big, 1), np.float32), "b": np.ones((1, 2 * big), np.float32)}),
        "Max": (make_model([helper.make_node("Max", ["a", "b"], ["y"])], [col, row],
                           [("y", F, None)]), {"a": fcol, "b": frow}),
        "Einsum_outer": (make_model([helper.make_node("Einsum", ["a", "b"], ["y"],
                                                      equation="i,j->ij")],
                                    [("a", F, ["M"]), ("b", F, ["N"])], [("y", F, None)]),
                         {"a": fcol[:, 0], "b": frow[0]}),
        "MatMul_int64": (make_model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                                    [("a", I64, ["M", 1]), ("b", I64, [1, "N"])],
                                    [("y", I64, None)]), {"a": icol, "b": irow}),
        "ConvTranspose_strides": (
            make_model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[big, big])],
                       [("x", F, [1, 1, 2, 2]), ("w", F, [1, 1, 1, 1])], [("y", F, None)]),
            {"x": np.ones((1, 1, 2, 2), np.float32), "w": np.ones((1, 1, 1, 1), np.float32)}),
    }


@pytest.mark.parametrize("op", list(_broadcast_bombs()))
def test_broadcast_and_attribute_bombs(op):
    model, feeds = _broadcast_bombs()[op]
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    sess = _session(model, so)
    err = _assert_refused_without_allocating(lambda: sess.run(None, feeds))
    assert isinstance(err, MemoryLimitExceeded), repr(err)


@pytest.mark.parametrize("op", ["Add_float", "Mul_after_shape_ops", "MaxPool_pads", "Conv_pads",
                                "Pad_attr_opset2", "Upsample_opset9", "Resize_sizes", "OneHot",
                                "ConstantOfShape_in_Loop"])
def test_more_bombs_are_refused(op):
    big = _BOMB
    one4 = np.ones((1, 1, 1, 1), np.float32)
    body = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["s"], ["big"]),
         helper.make_node("Identity", ["c"], ["co"])], "body",
        [helper.make_tensor_value_info("i", I64, []),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("co", TensorProto.BOOL, []),
         helper.make_tensor_value_info("big", F, None)])
    cases = {
        "Add_float": ([helper.make_node("Add", ["a", "b"], ["y"])],
                      [("a", F, ["M", 1]), ("b", F, [1, "N"])], [],
                      {"a": np.ones((big, 1), np.float32), "b": np.ones((1, big), np.float32)},
                      17),
        "Mul_after_shape_ops": ([helper.make_node("Shape", ["a"], ["sa"]),
                                 helper.make_node("ConstantOfShape", ["sa"], ["z"]),
                                 helper.make_node("Mul", ["z", "b"], ["y"])],
                                [("a", F, ["M", 1]), ("b", F, [1, "N"])], [],
                                {"a": np.ones((big, 1), np.float32),
                                 "b": np.ones((1, big), np.float32)}, 17),
        "MaxPool_pads": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[1, 1],
                                           pads=[0, 0, big, big])],
                         [("x", F, [1, 1, 1, 1])], [], {"x": one4}, 17),
        "Conv_pads": ([helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 0, big, big])],
                      [("x", F, [1, 1, 1, 1]), ("w", F, [1, 1, 1, 1])], [],
                      {"x": one4, "w": one4}, 17),
        "Pad_attr_opset2": ([helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, big, big])],
                            [("x", F, [1, 1])], [], {"x": np.ones((1, 1), np.float32)}, 2),
        "Upsample_opset9": ([helper.make_node("Upsample", ["x", "s"], ["y"])],
                            [("x", F, [1, 1, 1, 1]), ("s", F, [4])], [],
                            {"x": one4, "s": np.array([1, 1, big, big], np.float32)}, 9),
        "Resize_sizes": ([helper.make_node("Resize", ["x", "", "", "sz"], ["y"])],
                         [("x", F, [1, 1, 2, 2]), ("sz", I64, [4])], [],
                         {"x": np.ones((1, 1, 2, 2), np.float32),
                          "sz": np.array([1, 1, big, big], np.int64)}, 17),
        "OneHot": ([helper.make_node("OneHot", ["i", "d", "v"], ["y"])],
                   [("i", I64, [big]), ("d", I64, []), ("v", F, [2])], [],
                   {"i": np.zeros(big, np.int64), "d": np.array(big, np.int64),
                    "v": np.array([0, 1], np.float32)}, 17),
        "ConstantOfShape_in_Loop": ([helper.make_node("Loop", ["n", "t"], ["y"], body=body)],
                                    [("s", I64, [2])],
                                    [("n", np.array(1, np.int64)), ("t", np.array(True))],
                                    {"s": np.array([big, big], np.int64)}, 17),
    }
    nodes, inputs, inits, feeds, opset = cases[op]
    model = make_model(nodes, inputs, [("y", F, None)], inits, opset=opset)
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    err = _assert_refused_without_allocating(lambda: _session(model, so).run(None, feeds))
    assert isinstance(err, MemoryLimitExceeded), repr(err)


def test_bomb_cases_run_under_the_cap_when_small():
    """The same graphs with small sizes run and match onnxruntime (the cap is not over-eager)."""
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    small = {"ConstantOfShape": {"s": np.array([3, 5], np.int64)},
             "Expand": {"s": np.array([3, 5], np.int64)},
             "Tile": {"r": np.array([2, 3], np.int64)},
             "Range": {"b": np.array(7, np.float32)},
             "Pad": {"p": np.array([0, 1, 2, 3], np.int64)},
             "Resize": {"sc": np.array([1, 1, 2, 3], np.float32)}}
    for op, (model, feeds) in _bomb_cases().items():
        feeds = {**feeds, **small[op]}
        got = _session(model, so).run(None, feeds)
        want = ort_run(model, feeds)
        np.testing.assert_array_equal(got[0], want[0], err_msg=op)


def test_native_kernel_output_over_the_cap_is_refused():
    """MatMul (a C++ kernel) with a 256 MiB output under a 1 MiB cap."""
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                       [("a", F, ["M", 1]), ("b", F, [1, "N"])], [("y", F, None)])
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    sess = _session(model, so)
    a = np.ones((_BOMB, 1), np.float32)
    err = _assert_refused_without_allocating(lambda: sess.run(None, {"a": a, "b": a.T.copy()}))
    assert isinstance(err, MemoryLimitExceeded)


# ---- feeds -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_session():
    return _session(_small_model())


@pytest.mark.parametrize("feed,words", [
    ({"X": np.ones((1, 4), np.float32)}, ["'X'", "'x'"]),
    ({"x": np.ones((1, 4), np.float64)}, ["'x'", "float", "float64"]),
    ({"x": np.ones((1, 4), np.int32)}, ["'x'", "float", "int32"]),
    ({"x": np.ones(4, np.float32)}, ["'x'", "rank 2", "[4]"]),
    ({"x": np.ones((1, 1, 4), np.float32)}, ["'x'", "rank 2"]),
    ({"x": np.ones((1, 5), np.float32)}, ["'x'", "4", "[1, 5]"]),
    ({}, ["'x'", "missing"]),
    ({"x": "text"}, ["'x'", "str"]),
    ({"x": None}, ["'x'"]),
    ({"x": np.ones((1, 4), np.float32), "extra": np.ones(1)}, ["'extra'"]),
])
def test_bad_feeds_name_the_input_and_what_was_expected(small_session, feed, words):
    with pytest.raises(InvalidArgument) as info:
        small_session.run(None, feed)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_bad_feed_container(small_session):
    with pytest.raises(InvalidArgument):
        small_session.run(None, [np.ones((1, 4), np.float32)])


def test_empty_output_list_means_all_outputs_as_in_ort(small_session):
    x = np.ones((2, 4), np.float32)
    got = small_session.run([], {"x": x})
    want = ort_run(_small_model(), {"x": x})
    assert len(got) == len(want)


def test_output_names_repeated_and_reordered_as_in_ort():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])]
    model = make_model(nodes, [("x", F, [3])], [("y", F, [3]), ("z", F, [3])])
    x = np.array([-1, 0, 2], np.float32)
    sess = _session(model)
    for names in (["z", "y"], ["y", "y"], ("z",)):
        got = sess.run(names, {"x": x})
        want = ort_run(model, {"x": x}, list(names))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_python_list_feed_is_converted_as_in_ort(small_session):
    feed = [[1.0, -2.0, 3.0, 0.5]]
    got = small_session.run(None, {"x": feed})[0]
    want = ort_run(_small_model(), {"x": np.array(feed, np.float32)})[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, on purpose
def test_numpy_subclasses_are_accepted(small_session):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    want = ort_run(_small_model(), {"x": x})[0]
    for feed in (np.ma.masked_array(x), np.asmatrix(x)):
        np.testing.assert_array_equal(np.asarray(small_session.run(None, {"x": feed})[0]), want)


def test_concurrent_runs_from_many_threads_give_ort_results():
    """run() is documented thread-safe: 4 threads, mixed batch sizes, every result checked."""
    import threading

    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    model = make_model(nodes, [("x", F, ["N", 8])], [("y", F, ["N", 5])],
                       [("w", rng.standard_normal((8, 5)).astype(np.float32))])
    sess = _session(model)
    xs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (1, 2, 5, 9)]
    wants = [ort_run(model, {"x": x})[0] for x in xs]
    errors: list = []

    def worker(k):
        try:
            for i in range(150):
                j = (i + k) % len(xs)
                got = sess.run(None, {"x": xs[j]})[0]
                np.testing.assert_allclose(got, wants[j], rtol=1e-5, atol=1e-6)
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's number
            errors.append((k, exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:2]


def test_run_after_close_is_a_typed_error():
    sess = _session(_small_model())
    sess.close()
    with pytest.raises(InvalidArgument):
        sess.run(None, {"x": np.ones((1, 4), np.float32)})


def test_bad_output_name_is_named(small_session):
    with pytest.raises(InvalidArgument, match="'nope'"):
        small_session.run(["nope"], {"x": np.ones((1, 4), np.float32)})


def _layouts():
    base = np.arange(-24, 24, dtype=np.float32).reshape(12, 4) / 7
    return {
        "strided_rows": base[::3],
        "reversed": base[::-1],
        "reversed_cols": base[:, ::-1],
        "fortran": np.asfortranarray(base),
        "transposed_view": np.ascontiguousarray(base.T).T,
        "broadcast_zero_stride": np.broadcast_to(base[0], (5, 4)),
        "readonly": _readonly(base),
        "unaligned": _unaligned(base),
    }


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    view = buf[1:].view(np.float32).reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("layout", list(_layouts()))
def test_any_memory_layout_gives_ort_results_and_is_left_untouched(small_session, layout):
    x = _layouts()[layout]
    before = x.copy()
    got = small_session.run(None, {"x": x})[0]
    want = ort_run(_small_model(), {"x": np.ascontiguousarray(x)})[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x, before)


def test_big_endian_input_is_converted_or_refused(small_session):
    x = np.arange(8, dtype=">f4").reshape(2, 4)
    try:
        got = small_session.run(None, {"x": x})[0]
    except InvalidArgument as exc:
        assert "'x'" in str(exc)
    else:
        want = ort_run(_small_model(), {"x": x.astype(np.float32)})[0]
        np.testing.assert_array_equal(got, want)


def test_outputs_do_not_alias_inputs_or_each_other():
    nodes = [helper.make_node("Identity", ["x"], ["y1"]),
             helper.make_node("Identity", ["x"], ["y2"])]
    model = make_model(nodes, [("x", F, [3])], [("y1", F, [3]), ("y2", F, [3])])
    x = np.ones(3, np.float32)
    y1, y2 = _session(model).run(None, {"x": x})
    y1[0] = 42
    assert x[0] == 1 and y2[0] == 1


def test_repeated_runs_do_not_share_output_buffers(small_session):
    a = small_session.run(None, {"x": np.ones((2, 4), np.float32)})[0]
    keep = a.copy()
    small_session.run(None, {"x": np.full((2, 4), 5, np.float32)})
    np.testing.assert_array_equal(a, keep)


# ---- zero-size tensors -------------------------------------------------------------------------

def _zero_cases():
    return [
        ("Add", make_model([helper.make_node("Add", ["a", "b"], ["y"])],
                           [("a", F, ["M", 3]), ("b", F, [1, 3])], [("y", F, None)]),
         {"a": (0, 3), "b": (1, 3)}),
        ("MatMul_M0", make_model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                                 [("a", F, ["M", "K"]), ("b", F, ["K", "N"])], [("y", F, None)]),
         {"a": (0, 3), "b": (3, 2)}),
        ("MatMul_K0", make_model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                                 [("a", F, ["M", "K"]), ("b", F, ["K", "N"])], [("y", F, None)]),
         {"a": (2, 0), "b": (0, 3)}),
        ("Gemm_K0", make_model([helper.make_node("Gemm", ["a", "b", "c"], ["y"])],
                               [("a", F, ["M", "K"]), ("b", F, ["K", "N"]), ("c", F, ["N"])],
                               [("y", F, None)]),
         {"a": (2, 0), "b": (0, 3), "c": (3,)}),
        ("ReduceSum", make_model([helper.make_node("ReduceSum", ["a"], ["y"], keepdims=1)],
                                 [("a", F, ["M", 3])], [("y", F, None)], opset=11),
         {"a": (0, 3)}),
        ("ReduceMax_axis1", make_model([helper.make_node("ReduceMax", ["a"], ["y"], axes=[1])],
                                       [("a", F, ["M", 3])], [("y", F, None)], opset=11),
         {"a": (0, 3)}),
        ("Softmax", make_model([helper.make_node("Softmax", ["a"], ["y"], axis=-1)],
                               [("a", F, ["M", 3])], [("y", F, None)]),
         {"a": (0, 3)}),
        ("Concat", make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=0)],
                              [("a", F, ["M", 3]), ("b", F, ["P", 3])], [("y", F, None)]),
         {"a": (0, 3), "b": (2, 3)}),
        ("Transpose", make_model([helper.make_node("Transpose", ["a"], ["y"], perm=[1, 0])],
                                 [("a", F, ["M", 3])], [("y", F, None)]),
         {"a": (0, 3)}),
        ("Conv_batch0", make_model([helper.make_node("Conv", ["a", "w"], ["y"])],
                                   [("a", F, ["N", 1, 4, 4]), ("w", F, [2, 1, 3, 3])],
                                   [("y", F, None)]),
         {"a": (0, 1, 4, 4), "w": (2, 1, 3, 3)}),
        ("MaxPool_batch0", make_model(
            [helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2])],
            [("a", F, ["N", 1, 4, 4])], [("y", F, None)]),
         {"a": (0, 1, 4, 4)}),
        ("Gather_empty_idx", make_model([helper.make_node("Gather", ["a", "i"], ["y"])],
                                        [("a", F, [4, 3]), ("i", I64, ["K"])], [("y", F, None)]),
         {"a": (4, 3), "i": (0,)}),
        ("Reshape_infer", make_model([helper.make_node("Reshape", ["a", "s"], ["y"])],
                                     [("a", F, ["M", 3]), ("s", I64, [2])], [("y", F, None)]),
         {"a": (0, 3), "s": [3, -1]}),
        ("Reshape_allowzero", make_model(
            [helper.make_node("Reshape", ["a", "s"], ["y"], allowzero=1)],
            [("a", F, ["M", 3]), ("s", I64, [2])], [("y", F, None)], opset=14),
         {"a": (0, 3), "s": [3, 0]}),
        ("LayerNorm", make_model([helper.make_node("LayerNormalization", ["a", "g"], ["y"])],
                                 [("a", F, ["M", 3]), ("g", F, [3])], [("y", F, None)]),
         {"a": (0, 3), "g": (3,)}),
    ]


@pytest.mark.parametrize("case", _zero_cases(), ids=lambda c: c[0])
def test_zero_size_tensors_match_ort(case):
    _, model, shapes = case
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        shape = shapes[vi.name]
        if vi.name == "s":  # Reshape target: a value, not a shape
            feeds[vi.name] = np.array(shape, np.int64)
        elif vi.type.tensor_type.elem_type == I64:
            feeds[vi.name] = np.zeros(shape, np.int64)
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    got = _session(model).run(None, feeds)
    want = ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# ---- NaN and Inf propagate as in onnxruntime --------------------------------------------------

_SPECIAL = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5, 3e38]], np.float32)


def _unary(op, opset=17, out=F, **attrs):
    return make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, [1, 8])],
                      [("y", out, None)], opset=opset)


_NAN_CASES = {
    "Relu": _unary("Relu"), "Sigmoid": _unary("Sigmoid"), "Tanh": _unary("Tanh"),
    "Exp": _unary("Exp"), "Log": _unary("Log"), "Sqrt": _unary("Sqrt"), "Abs": _unary("Abs"),
    "Neg": _unary("Neg"), "Floor": _unary("Floor"), "Round": _unary("Round"),
    "Sign": _unary("Sign"), "Reciprocal": _unary("Reciprocal"), "Erf": _unary("Erf"),
    "LeakyRelu": _unary("LeakyRelu"), "Elu": _unary("Elu"), "Softplus": _unary("Softplus"),
    "HardSigmoid": _unary("HardSigmoid"), "IsNaN": _unary("IsNaN", out=TensorProto.BOOL),
    "IsInf": _unary("IsInf", out=TensorProto.BOOL),
    "Softmax": _unary("Softmax", axis=-1), "LogSoftmax": _unary("LogSoftmax", axis=-1),
    "ReduceSum": _unary("ReduceSum", opset=11, axes=[1]),
    "ReduceMean": _unary("ReduceMean", opset=11, axes=[1]),
    "ReduceL2": _unary("ReduceL2", opset=11, axes=[1]),
    "ReduceLogSumExp": _unary("ReduceLogSumExp", opset=11, axes=[1]),
    "CumSum": make_model([helper.make_node("CumSum", ["x", "ax"], ["y"])], [("x", F, [1, 8])],
                         [("y", F, None)], [("ax", np.array(1, np.int64))]),
    "MatMul": make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", F, [1, 8])],
                         [("y", F, None)], [("w", np.ones((8, 3), np.float32))]),
    "Div_self": make_model([helper.make_node("Div", ["x", "x"], ["y"])], [("x", F, [1, 8])],
                           [("y", F, None)]),
    "Mul_zero": make_model([helper.make_node("Mul", ["x", "z"], ["y"])], [("x", F, [1, 8])],
                           [("y", F, None)], [("z", np.zeros(8, np.float32))]),
    "Sub_self": make_model([helper.make_node("Sub", ["x", "x"], ["y"])], [("x", F, [1, 8])],
                           [("y", F, None)]),
    "Pow_half": make_model([helper.make_node("Pow", ["x", "p"], ["y"])], [("x", F, [1, 8])],
                           [("y", F, None)], [("p", np.array(0.5, np.float32))]),
    "LayerNorm": make_model([helper.make_node("LayerNormalization", ["x", "g"], ["y"])],
                            [("x", F, [1, 8])], [("y", F, None)],
                            [("g", np.ones(8, np.float32))]),
    "Gemm": make_model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
                       [("x", F, [1, 8])], [("y", F, None)],
                       [("w", np.ones((2, 8), np.float32)), ("b", np.zeros(2, np.float32))]),
}

# Ops whose NaN handling legitimately varies between libraries are compared only where
# onnxruntime documents a behaviour; Max/Min/Clip/ArgMax/ReduceMax are spelled out below.


@pytest.mark.parametrize("name", sorted(_NAN_CASES))
def test_nan_and_inf_propagate_like_ort(name):
    model = _NAN_CASES[name]
    feeds = {"x": _SPECIAL.copy()}
    with np.errstate(all="ignore"):
        got = _session(model).run(None, feeds)
    want = ort_run(model, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("op", ["Max", "Min", "Relu_then_Max"])
def test_nan_in_elementwise_max_min_like_ort(op):
    other = np.array([[1.0, np.nan, 2.0, np.nan, np.inf, -np.inf, 0.0, 1.0]], np.float32)
    if op == "Relu_then_Max":
        nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Max", ["r", "o"], ["y"])]
    else:
        nodes = [helper.make_node(op, ["x", "o"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 8]), ("o", F, [1, 8])], [("y", F, None)])
    feeds = {"x": _SPECIAL.copy(), "o": other}
    got = _session(model).run(None, feeds)[0]
    want = ort_run(model, feeds)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


def test_nan_in_clip_like_ort():
    model = make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", F, [1, 8])],
                       [("y", F, None)], [("lo", np.array(-1, np.float32)),
                                          ("hi", np.array(1, np.float32))])
    feeds = {"x": _SPECIAL.copy()}
    got = _session(model).run(None, feeds)[0]
    want = ort_run(model, feeds)[0]
    np.testing.assert_array_equal(got, want)


# ---- runs that never end on their own ---------------------------------------------------------

_ENDLESS_LOOP_SCRIPT = r'''
import sys
import threading

import numpy as np
from onnx import TensorProto, helper
from runtime import InferenceSession, RunOptions
from runtime.errors import RunCancelled
from tests.conftest import make_model

body = helper.make_graph(
    [helper.make_node("Identity", ["c"], ["co"]), helper.make_node("Add", ["a", "one"], ["ao"])],
    "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("c", TensorProto.BOOL, []),
             helper.make_tensor_value_info("a", TensorProto.FLOAT, [])],
    [helper.make_tensor_value_info("co", TensorProto.BOOL, []),
     helper.make_tensor_value_info("ao", TensorProto.FLOAT, [])],
    [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
# No trip count and a condition that stays true: legal ONNX that never ends.
model = make_model([helper.make_node("Loop", ["", "t", "x"], ["y"], body=body)],
                   [("x", TensorProto.FLOAT, [])], [("y", TensorProto.FLOAT, None)],
                   [("t", np.array(True))])
sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
ro = RunOptions()
if sys.argv[1] == "timeout":
    ro.timeout_s = 0.5
else:
    threading.Timer(0.5, setattr, (ro, "terminate", True)).start()
try:
    sess.run(None, {"x": np.array(0, np.float32)}, ro)
except RunCancelled:
    print("cancelled")
'''


def _run_endless_loop(how: str):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in sys.path if p])
    try:
        proc = subprocess.run([sys.executable, "-c", _ENDLESS_LOOP_SCRIPT, how], cwd=root,
                              env=env, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"RunOptions ({how}) did not stop an endless Loop within 30 s")
    assert "cancelled" in proc.stdout, proc.stderr[-500:]


def test_terminate_stops_an_endless_loop():
    _run_endless_loop("terminate")


def test_timeout_stops_an_endless_loop():
    _run_endless_loop("timeout")


# ---- soak: many runs, flat memory ---------------------------------------------------------------

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_soak_ten_thousand_runs_keep_rss_flat():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    rng = np.random.default_rng(0)
    model = make_model(nodes, [("x", F, ["N", 16])], [("y", F, ["N", 8])],
                       [("w", rng.standard_normal((16, 8)).astype(np.float32)),
                        ("b", rng.standard_normal(8).astype(np.float32))])
    sess = _session(model)
    xs = [rng.standard_normal((n, 16)).astype(np.float32) for n in (1, 3, 7)]
    for x in xs:  # warm up: plans, caches, arena for each shape
        for _ in range(50):
            sess.run(None, {"x": x})
    gc.collect()
    before = _rss_bytes()
    for i in range(10_000):
        sess.run(None, {"x": xs[i % 3]})
    gc.collect()
    growth = _rss_bytes() - before
    assert growth < 20 << 20, f"RSS grew by {growth / 2**20:.1f} MiB over 10,000 runs"
    np.testing.assert_allclose(sess.run(None, {"x": xs[1]})[0], ort_run(model, {"x": xs[1]})[0],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_soak_session_create_and_close_keep_rss_flat():
    data = _small_model().SerializeToString()
    x = np.ones((2, 4), np.float32)
    for _ in range(20):
        with _session(data) as s:
            s.run(None, {"x": x})
    gc.collect()
    before = _rss_bytes()
    for _ in range(300):
        with _session(data) as s:
            s.run(None, {"x": x})
    gc.collect()
    growth = _rss_bytes() - before
    assert growth < 20 << 20, f"RSS grew by {growth / 2**20:.1f} MiB over 300 sessions"
