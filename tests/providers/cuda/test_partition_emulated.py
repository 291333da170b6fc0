"""emulation: the CUDA provider inside sessions: partitioning around an op it lacks, boundary
copies counted, shape arithmetic kept on the host, device feeds, options, and the fallback
to the CPU (with exactly one warning) when CUDA is missing (that one not emulated)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

from runtime import InferenceSession, ProviderFallbackWarning, Tensor
from runtime.errors import ProviderOptionError
from tests.conftest import make_model, ort_run
from tests.providers.cuda.conftest import REAL_GPU

pytestmark = pytest.mark.emulation

F = TensorProto.FLOAT


def _mixed_model():
    """Conv -> Relu -> CumSum (no CUDA kernel) -> Add -> Softmax; one extra output read from
    the first cuda partition."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("CumSum", ["r", "axis"], ["cs"], name="cumsum"),
        helper.make_node("Add", ["cs", "r"], ["a"], name="add"),
        helper.make_node("Softmax", ["a"], ["y"], axis=-1, name="softmax"),
    ]
    inits = [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             ("axis", np.array(3, np.int64))]
    return make_model(nodes, [("x", F, [1, 3, 6, 6])],
                      [("y", F, [1, 4, 6, 6]), ("r", F, [1, 4, 6, 6])], initializers=inits)


def test_partitions_around_an_op_cuda_lacks_and_counts_copies():
    model = _mixed_model()
    x = np.random.default_rng(2).standard_normal((1, 3, 6, 6)).astype(np.float32)
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    info = sess.explain()
    assert [p["provider"] for p in info["partitions"]] == ["cuda", "cpu", "cuda"]
    cumsum = next(n for n in info["nodes"] if n["node"] == "cumsum")
    assert cumsum["provider"] == "cpu"
    assert "no CUDA kernel" in cumsum["not_taken_by"]["cuda"]
    # Static count: r to the CPU, cs back to cuda (and r read again by the second cuda part).
    assert info["boundary_copies"] >= 2

    got = sess.run(None, {"x": x})
    want = ort_run(model, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    copies = sess.explain()["partitions"][0]["details"]["copies"]
    # One run: x up; r down to the CPU partition; cs up into the second cuda partition (which
    # reads r where it already is, on the device); y and r down as the results.
    assert copies["h2d"] == 2
    assert copies["d2h"] == 3
    assert copies["shape_syncs"] == 0
    assert copies["weights_uploaded"] == 1  # the conv weight, once, kept on the device
    sess.run(None, {"x": x})
    copies2 = sess.explain()["partitions"][0]["details"]["copies"]
    assert copies2["h2d"] == 4 and copies2["weights_uploaded"] == 1


def test_exclude_ops_moves_nodes_to_the_cpu():
    model = _mixed_model()
    sess = InferenceSession(model.SerializeToString(),
                            providers=[("cuda", {"exclude_ops": "Softmax"}), "cpu"])
    softmax = next(n for n in sess.explain()["nodes"] if n["node"] == "softmax")
    assert softmax["provider"] == "cpu"


def test_shape_arithmetic_stays_on_the_host():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape: the Reshape target is computed on the
    host, so no device value is ever copied back for it."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "ax"], ["d0u"]),
        helper.make_node("Concat", ["d0u", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["y"]),
    ]
    inits = [("i0", np.array(0, np.int64)), ("ax", np.array([0], np.int64)),
             ("minus1", np.array([-1], np.int64))]
    model = make_model(nodes, [("x", F, ["N", 3, 4])], [("y", F, None)], initializers=inits)
    sess = InferenceSession(model.SerializeToString(), providers=["cuda"])
    x = np.random.default_rng(3).standard_normal((5, 3, 4)).astype(np.float32)
    y = sess.run(None, {"x": x})[0]
    np.testing.assert_array_equal(y, np.maximum(x, 0).reshape(5, -1))
    details = sess.explain()["partitions"][0]["details"]
    assert details["copies"]["shape_syncs"] == 0
    assert details["copies"]["internal_h2d"] == 0
    assert all(n["provider"] == "cuda" for n in sess.explain()["nodes"])


def test_device_feeds_skip_the_upload():
    model = _mixed_model()
    x = np.random.default_rng(4).standard_normal((1, 3, 6, 6)).astype(np.float32)
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    t = Tensor.ortvalue_from_numpy(x, "cuda", 0)
    got = sess.run(None, {"x": t})
    want = ort_run(model, {"x": x})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    assert isinstance(got[0], np.ndarray) and type(got[0]) is np.ndarray
    assert sess.explain()["partitions"][0]["details"]["copies"]["h2d"] == 1  # cs only, not x


def test_options_are_validated_and_reported():
    model = _mixed_model()
    opts = {"device_id": "0", "gpu_mem_limit": str(1 << 30),
            "arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "EXHAUSTIVE",
            "enable_cuda_graph": "1"}
    sess = InferenceSession(model.SerializeToString(), providers=[("cuda", opts), "cpu"])
    reported = sess.get_provider_options()["CUDAExecutionProvider"]
    assert reported["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert reported["enable_cuda_graph"] == "True"
    x = np.zeros((1, 3, 6, 6), np.float32)
    sess.run(None, {"x": x})
    graph_info = sess.explain()["partitions"][0]["details"]["cuda_graph"]
    assert graph_info["enabled"]
    if not REAL_GPU:
        assert graph_info["captured_signatures"] == 0  # emulation never captures
    else:  # the second run with the same shapes captures, the third replays
        sess.run(None, {"x": x})
        sess.run(None, {"x": x})
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0],
                                   rtol=1e-4, atol=1e-5)
    for bad in ({"cudnn_conv_algo_search": "FAST"}, {"gpu_mem_limit": -1},
                {"arena_extend_strategy": "grow"}, {"device_idx": 0}):
        with pytest.raises(ProviderOptionError):
            InferenceSession(model.SerializeToString(), providers=[("cuda", bad), "cpu"])


def test_cuda_missing_falls_back_to_cpu_with_one_warning(monkeypatch):
    """Not emulated: without CuPy the provider is unavailable and the session warns once."""
    monkeypatch.delenv("FERRY_CUDA_EMULATION", raising=False)
    import runtime

    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here: CUDA may be really available")
    except Exception:
        pass
    assert "CUDAExecutionProvider" not in runtime.get_available_providers()
    assert "CuPy" in runtime.get_unavailable_providers()["CUDAExecutionProvider"]
    model = _mixed_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    fallback = [w for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    assert len(fallback) == 1 and "cuda" in str(fallback[0].message)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    x = np.ones((1, 3, 6, 6), np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0],
                               rtol=1e-5, atol=1e-6)


def _small_cnn(dtype=np.float32):
    """Conv-BN-Relu-MaxPool-Conv(stride 2, groups)-GlobalAveragePool-Flatten-Gemm-Softmax with
    random weights: the shape of an image classifier, small enough for a unit test."""
    rng = np.random.default_rng(5)
    et = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], strides=[2, 2], group=2,
                         pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"]),
    ]
    inits = [("w1", w(8, 3, 3, 3)), ("b1", w(8)), ("g", w(8) + 1), ("be", w(8)),
             ("mu", w(8)), ("var", np.abs(w(8)) + 0.5), ("w2", w(6, 4, 3, 3)),
             ("wf", w(10, 6)), ("bf", w(10))]
    return make_model(nodes, [("x", et, ["N", 3, 16, 16])], [("y", et, ["N", 10])],
                      initializers=inits)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 3e-3)])
def test_small_cnn_all_on_cuda_matches_ort(dtype, tol):
    model = _small_cnn(dtype)
    x = np.random.default_rng(6).standard_normal((2, 3, 16, 16)).astype(dtype)
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    assert all(n["provider"] == "cuda" for n in sess.explain()["nodes"])
    got = sess.run(None, {"x": x})[0]
    want = ort_run(model, {"x": x})[0]
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)
    copies = sess.explain()["partitions"][0]["details"]["copies"]
    assert copies["h2d"] == 1 and copies["d2h"] == 1


def test_outputs_never_alias_weights_or_feeds():
    """Identity/Reshape of a weight or of an input: the caller may write into the result."""
    w = np.arange(6, dtype=np.float32)
    nodes = [helper.make_node("Identity", ["w"], ["wi"]),
             helper.make_node("Reshape", ["w", "shape"], ["wr"]),
             helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("Add", ["x", "wi"], ["y"])]
    model = make_model(nodes, [("x", F, [6])], [("wi", F, [6]), ("wr", F, [2, 3]),
                                                 ("xi", F, [6]), ("y", F, [6])],
                       initializers=[("w", w), ("shape", np.array([2, 3], np.int64))])
    sess = InferenceSession(model.SerializeToString(), providers=["cuda"])
    x = np.ones(6, np.float32)
    b = sess.io_binding()
    b.bind_input("x", Tensor.ortvalue_from_numpy(x, "cuda", 0))
    for name in ("wi", "wr", "xi", "y"):
        b.bind_output(name, "cuda")
    sess.run_with_iobinding(b)
    outs = b.get_outputs()
    for t in outs[:3]:
        t.update_inplace(np.full(t.shape(), -7, np.float32))
    again = sess.run(None, {"x": x})
    np.testing.assert_array_equal(again[0], w)
    np.testing.assert_array_equal(again[1], w.reshape(2, 3))
    np.testing.assert_array_equal(again[3], x + w)
