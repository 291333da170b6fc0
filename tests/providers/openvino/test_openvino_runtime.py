"""The OpenVINO provider at run time: dynamic shapes, the compiled-blob cache, concurrent runs."""

from __future__ import annotations

import glob
import json
import os
import threading

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from tests.providers.openvino.ov_helpers import (
    assert_close,
    det_split_model,
    mlp_model,
    ort_run,
    ov_details,
    placement,
    session,
)


# ---- dynamic shapes -------------------------------------------------------------------------
def test_symbolic_batch_compiles_per_shape_by_default():
    model = mlp_model(batch="N")
    sess = session(model)
    (details,) = ov_details(sess)
    assert details["shape_mode"] == "per-shape" and details["compiles"] == 0
    rng = np.random.default_rng(0)
    for n in (1, 3, 5, 3, 1):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))
    # One compile per distinct shape, reused when the shape comes back.
    assert ov_details(sess)[0]["compiles"] == 3


def test_enable_dynamic_shapes_compiles_once():
    model = mlp_model(batch="N")
    sess = session(model, options={"enable_dynamic_shapes": True})
    (details,) = ov_details(sess)
    assert details["shape_mode"] == "dynamic" and details["compiles"] == 1
    rng = np.random.default_rng(1)
    for n in (1, 4, 7, 0):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))
    assert ov_details(sess)[0]["compiles"] == 1


def test_data_dependent_shapes_inside_a_partition():
    # NonZero's output size depends on the data; the partition compiles dynamically.
    from onnx import TensorProto, helper

    from tests.conftest import make_model

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("NonZero", ["r"], ["nz"], name="nonzero"),
             helper.make_node("Transpose", ["nz"], ["y"], name="transpose")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [3, 4])],
                       [("y", TensorProto.INT64, None)])
    sess = session(model, options={"enable_dynamic_shapes": True})
    assert set(placement(sess).values()) == {"openvino"}
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.standard_normal((3, 4)).astype(np.float32)
        assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


# ---- cache ----------------------------------------------------------------------------------
def _cache_state(root):
    dirs = sorted(glob.glob(os.path.join(root, "openvino", "*")))
    return {d: sorted(f for f in os.listdir(d) if f != "ferry_cache.json") for d in dirs}


def test_cache_dir_blob_is_written_then_reused(tmp_path):
    model = mlp_model(batch=2)
    opts = {"cache_dir": str(tmp_path)}
    x = np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    expected = ort_run(model, {"x": x})

    first = session(model, options=opts)
    (d1,) = ov_details(first)
    assert d1["cache"]["loaded_from_cache"] == [False]
    state = _cache_state(str(tmp_path))
    assert len(state) == 1
    (cache_dir, files), = state.items()
    assert any(f.endswith(".blob") for f in files), files
    assert d1["cache"]["dirs"] == [cache_dir]
    with open(os.path.join(cache_dir, "ferry_cache.json")) as f:
        meta = json.load(f)
    assert meta["openvino"] == ov.get_version() and meta["device"] == "CPU"
    mtimes = {f: os.path.getmtime(os.path.join(cache_dir, f)) for f in files}
    assert_close(first.run(None, {"x": x}), expected)

    second = session(model, options=opts)
    (d2,) = ov_details(second)
    assert d2["cache"]["loaded_from_cache"] == [True]
    assert d2["cache"]["dirs"] == [cache_dir]
    assert _cache_state(str(tmp_path)) == state
    assert {f: os.path.getmtime(os.path.join(cache_dir, f)) for f in files} == mtimes
    assert_close(second.run(None, {"x": x}), expected)


def test_cache_key_changes_with_model_precision_and_shape(tmp_path):
    opts = {"cache_dir": str(tmp_path)}
    session(mlp_model(batch=2, seed=0), options=opts)
    assert len(_cache_state(str(tmp_path))) == 1
    # Other weights: a new entry, never the stale blob.
    changed = session(mlp_model(batch=2, seed=1), options=opts)
    assert ov_details(changed)[0]["cache"]["loaded_from_cache"] == [False]
    assert len(_cache_state(str(tmp_path))) == 2
    # Other precision setting: a new entry.
    acc = session(mlp_model(batch=2, seed=0), options=dict(opts, precision="ACCURACY"))
    assert ov_details(acc)[0]["cache"]["loaded_from_cache"] == [False]
    assert len(_cache_state(str(tmp_path))) == 3
    # Other static shape: a new entry.
    other = session(mlp_model(batch=3, seed=0), options=opts)
    assert ov_details(other)[0]["cache"]["loaded_from_cache"] == [False]
    assert len(_cache_state(str(tmp_path))) == 4
    # The first settings again: reused.
    again = session(mlp_model(batch=2, seed=0), options=opts)
    assert ov_details(again)[0]["cache"]["loaded_from_cache"] == [True]
    assert len(_cache_state(str(tmp_path))) == 4


def test_cache_key_changes_with_openvino_version(tmp_path, monkeypatch):
    from providers.openvino import partition

    opts = {"cache_dir": str(tmp_path)}
    session(mlp_model(batch=2), options=opts)
    real = ov.get_version()
    monkeypatch.setattr(partition.OpenVINOPartition, "_version", lambda self: real + "-other")
    other = session(mlp_model(batch=2), options=opts)
    assert ov_details(other)[0]["cache"]["loaded_from_cache"] == [False]
    assert len(_cache_state(str(tmp_path))) == 2


def test_cache_per_shape_entries(tmp_path):
    model = mlp_model(batch="N")
    opts = {"cache_dir": str(tmp_path)}
    sess = session(model, options=opts)
    for n in (1, 2):
        sess.run(None, {"x": np.ones((n, 8), np.float32)})
    assert len(_cache_state(str(tmp_path))) == 2
    again = session(model, options=opts)
    for n in (1, 2):
        again.run(None, {"x": np.ones((n, 8), np.float32)})
    assert ov_details(again)[0]["cache"]["loaded_from_cache"] == [True, True]


# ---- concurrency ----------------------------------------------------------------------------
@pytest.mark.parametrize("model_fn, streams", [(lambda: mlp_model(batch="N"), 1),
                                               (det_split_model, 2)])
def test_concurrent_runs_on_one_session(model_fn, streams):
    model = model_fn()
    sess = session(model, providers=("openvino", "cpu"), options={"num_streams": streams})
    rng = np.random.default_rng(4)
    inp = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inp.type.tensor_type.shape.dim]
    cases = []
    for i in range(12):
        shape = [d if d else 1 + i % 3 for d in dims]
        x = rng.random(shape).astype(np.float32)
        cases.append((x, ort_run(model, {"x": x})))
    errors = []

    def worker(offset):
        try:
            for k in range(30):
                x, expected = cases[(offset + k) % len(cases)]
                assert_close(sess.run(None, {"x": x}), expected, rtol=1e-5, atol=1e-6)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_concurrent_first_runs_compile_each_shape_once():
    model = mlp_model(batch="N")
    sess = session(model)
    shapes = [1, 2, 3] * 4
    rng = np.random.default_rng(5)
    cases = []
    for n in shapes:
        x = rng.random((n, 8)).astype(np.float32)
        cases.append((x, ort_run(model, {"x": x})))
    barrier = threading.Barrier(len(cases))
    errors = []

    def worker(x, expected):
        try:
            barrier.wait()
            assert_close(sess.run(None, {"x": x}), expected)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=c) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert ov_details(sess)[0]["compiles"] == 3


def test_two_outputs_of_one_tensor_are_distinct_arrays():
    from onnx import TensorProto, helper

    from tests.conftest import make_model

    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"),
             helper.make_node("Identity", ["y"], ["y2"], name="ident")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [64, 128])],
                       [("y", TensorProto.FLOAT, [64, 128]), ("y2", TensorProto.FLOAT, [64, 128])])
    sess = session(model)
    x = np.random.default_rng(6).standard_normal((64, 128)).astype(np.float32)
    y, y2 = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(y2, np.maximum(x, 0))
    assert not np.shares_memory(y, y2)


def test_big_partitions_go_through_external_data(monkeypatch, tmp_path):
    # The path taken by partitions over protobuf's 2 GiB limit, forced on a small model.
    from providers.openvino import partition

    monkeypatch.setattr(partition, "_EXTERNAL_DATA_BYTES", 0)
    model = mlp_model(batch="N", hidden=512)
    sess = session(model, options={"cache_dir": str(tmp_path)})
    rng = np.random.default_rng(7)
    for n in (2, 3):
        x = rng.standard_normal((n, 8)).astype(np.float32)
        assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}), rtol=1e-4, atol=1e-5)
    again = session(model, options={"cache_dir": str(tmp_path)})
    again.run(None, {"x": np.ones((2, 8), np.float32)})
    assert ov_details(again)[0]["cache"]["loaded_from_cache"] == [True]
