"""IOBinding and runtime.Tensor. CPU tests run as they are; the cuda ones are labelled
emulation: the CUDA provider on numpy host emulation (FERRY_CUDA_EMULATION=1)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from runtime import InferenceSession, IOBinding, Tensor
from runtime.errors import InvalidArgument
from tests.conftest import REAL_GPU, make_model, ort_run

F = TensorProto.FLOAT


def _model():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Relu", ["m"], ["y"]),
             helper.make_node("ReduceSum", ["y", "ax"], ["s"], keepdims=1)]
    w = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    return make_model(nodes, [("x", F, ["N", 4])], [("y", F, ["N", 5]), ("s", F, ["N", 1])],
                      initializers=[("w", w), ("ax", np.array([1], np.int64))])


X = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)


# ---- runtime.Tensor ------------------------------------------------------------------------

def test_tensor_on_cpu():
    t = Tensor.ortvalue_from_numpy(X)
    assert t.device_name() == "cpu" and t.shape() == [3, 4]
    assert t.data_type() == "tensor(float)" and t.element_type() is np.float32
    assert t.numpy() is not None and np.shares_memory(t.numpy(), X)
    assert Tensor.from_numpy(X).shape() == [3, 4]
    e = Tensor.ortvalue_from_shape_and_type([2, 2], np.int64)
    e.update_inplace(np.arange(4).reshape(2, 2))
    assert e.numpy().tolist() == [[0, 1], [2, 3]]
    with pytest.raises(InvalidArgument):
        e.update_inplace(np.zeros(3))


def test_tensor_dlpack_both_ways():
    t = Tensor.ortvalue_from_numpy(X)
    assert t.__dlpack_device__() == (1, 0)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, X)
    u = Tensor.from_dlpack(X)
    assert u.device_name() == "cpu" and np.shares_memory(u.numpy(), X)
    torch = pytest.importorskip("torch")
    tt = torch.from_dlpack(t)
    assert tt.shape == (3, 4)
    v = Tensor.from_dlpack(torch.arange(6, dtype=torch.float32))
    assert v.numpy().tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.emulation
def test_tensor_on_emulated_cuda(cuda_emulation):
    t = Tensor.ortvalue_from_numpy(X, "cuda", 0)
    assert t.device_name() == "cuda" and t.device_id() == 0
    np.testing.assert_array_equal(t.numpy(), X)
    assert not np.shares_memory(t.numpy(), X)  # uploaded: a copy
    if not REAL_GPU:
        # Emulated device memory is host memory, and DLPack says so.
        assert t.__dlpack_device__() == (1, 0)
        np.testing.assert_array_equal(np.from_dlpack(t), X)
        return
    assert t.__dlpack_device__()[0] == 2  # kDLCUDA
    u = Tensor.from_dlpack(t)  # zero-copy round trip through DLPack
    assert u.device_name() == "cuda" and u.data_ptr() == t.data_ptr()
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        tt = torch.from_dlpack(t)
        assert tt.is_cuda and tt.data_ptr() == t.data_ptr()
        v = Tensor.from_array(tt)
        assert v.device_name() == "cuda" and v.data_ptr() == t.data_ptr()


def test_cuda_tensor_without_cuda_is_refused(monkeypatch):
    monkeypatch.delenv("FERRY_CUDA_EMULATION", raising=False)
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except Exception:
        pass
    with pytest.raises(InvalidArgument, match="CuPy"):
        Tensor.ortvalue_from_numpy(X, "cuda", 0)


# ---- IOBinding on the CPU ------------------------------------------------------------------

def test_iobinding_cpu_matches_run():
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
    b = sess.io_binding()
    assert isinstance(b, IOBinding)
    b.bind_cpu_input("x", X)
    b.bind_output("y")
    b.bind_output("s", "cpu")
    sess.run_with_iobinding(b)
    outs = b.get_outputs()
    assert [o.device_name() for o in outs] == ["cpu", "cpu"]
    want = ort_run(model, {"x": X})
    for got, w in zip(b.copy_outputs_to_cpu(), want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_iobinding_preallocated_outputs_and_pointer_inputs():
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
    b = sess.io_binding()
    x = np.ascontiguousarray(X)
    b.bind_input("x", "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
    y_buf = np.full((3, 5), np.nan, np.float32)
    s_buf = Tensor.ortvalue_from_shape_and_type([3, 1], np.float32)
    b.bind_output("y", y_buf)
    b.bind_ortvalue_output("s", s_buf)
    sess.run_with_iobinding(b)
    want = ort_run(model, {"x": X})
    np.testing.assert_allclose(y_buf, want[0], rtol=1e-5, atol=1e-6)  # written in place
    assert b.get_outputs()[1] is s_buf
    np.testing.assert_allclose(s_buf.numpy(), want[1], rtol=1e-5, atol=1e-6)
    # A second run with a new input reuses the same buffers.
    x[:] = -x
    sess.run_with_iobinding(b)
    np.testing.assert_allclose(y_buf, ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_iobinding_errors():
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
    b = sess.io_binding()
    with pytest.raises(InvalidArgument):
        b.get_outputs()
    b.bind_input("x", X)
    b.bind_output("y", np.zeros((2, 5), np.float32))  # wrong shape
    with pytest.raises(InvalidArgument, match="bound buffer"):
        sess.run_with_iobinding(b)
    b.clear_binding_outputs()
    b.bind_output("nope")
    with pytest.raises(InvalidArgument):
        sess.run_with_iobinding(b)
    other = InferenceSession(model.SerializeToString(), providers=["cpu"])
    with pytest.raises(InvalidArgument):
        other.run_with_iobinding(b)


# ---- IOBinding with the (emulated) CUDA provider -------------------------------------------

@pytest.mark.emulation
def test_iobinding_cuda_outputs_stay_on_device(cuda_emulation):
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    b = sess.io_binding()
    b.bind_input("x", Tensor.ortvalue_from_numpy(X, "cuda", 0))
    b.bind_output("y", "cuda")
    b.bind_output("s", "cuda", 0)
    b.synchronize_inputs()
    sess.run_with_iobinding(b)
    b.synchronize_outputs()
    outs = b.get_outputs()
    assert [o.device_name() for o in outs] == ["cuda", "cuda"]
    copies = sess.explain()["partitions"][0]["details"]["copies"]
    assert copies["h2d"] == 0 and copies["d2h"] == 0  # nothing crossed the boundary
    want = ort_run(model, {"x": X})
    for got, w in zip(b.copy_outputs_to_cpu(), want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@pytest.mark.emulation
def test_iobinding_cuda_preallocated_and_cpu_outputs(cuda_emulation):
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    b = sess.io_binding()
    b.bind_cpu_input("x", X)
    y_dev = Tensor.ortvalue_from_shape_and_type([3, 5], np.float32, "cuda", 0)
    b.bind_output("y", y_dev)
    b.bind_output("s", "cpu")
    sess.run_with_iobinding(b)
    y, s = b.get_outputs()
    assert y is y_dev and s.device_name() == "cpu"
    want = ort_run(model, {"x": X})
    np.testing.assert_allclose(y_dev.numpy(), want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), want[1], rtol=1e-5, atol=1e-6)
    copies = sess.explain()["partitions"][0]["details"]["copies"]
    assert copies["h2d"] == 1 and copies["d2h"] == 1  # x up, s down


@pytest.mark.emulation
def test_iobinding_cuda_output_from_a_cpu_partition(cuda_emulation):
    """An output computed on the CPU but bound to cuda is uploaded once."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("CumSum", ["r", "ax"], ["y"])]
    model = make_model(nodes, [("x", F, [3, 4])], [("y", F, [3, 4])],
                       initializers=[("ax", np.array(1, np.int64))])
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    b = sess.io_binding()
    b.bind_input("x", X)
    b.bind_output("y", "cuda")
    sess.run_with_iobinding(b)
    out = b.get_outputs()[0]
    assert out.device_name() == "cuda"
    np.testing.assert_allclose(out.numpy(), ort_run(model, {"x": X})[0], rtol=1e-5, atol=1e-6)


def test_run_accepts_tensors_and_host_dlpack_producers():
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
    want = ort_run(model, {"x": X})

    class HostDLPack:  # only the DLPack protocol, no __array__
        def __init__(self, a):
            self._a = a

        def __dlpack__(self, **kwargs):
            return self._a.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self._a.__dlpack_device__()

    for feed in (Tensor.ortvalue_from_numpy(X), HostDLPack(X)):
        got = sess.run(None, {"x": feed})
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)


@pytest.mark.emulation
def test_iobinding_cuda_pointer_form(cuda_emulation):
    """ORT's raw form: bind_input(name, 'cuda', id, element_type, shape, ptr) and the same for
    a preallocated output."""
    model = _model()
    sess = InferenceSession(model.SerializeToString(), providers=["cuda", "cpu"])
    x_dev = Tensor.ortvalue_from_numpy(X, "cuda", 0)
    y_dev = Tensor.ortvalue_from_shape_and_type([3, 5], np.float32, "cuda", 0)
    b = sess.io_binding()
    b.bind_input("x", "cuda", 0, np.float32, x_dev.shape(), x_dev.data_ptr())
    b.bind_output("y", "cuda", 0, np.float32, [3, 5], y_dev.data_ptr())
    sess.run_with_iobinding(b)
    out = b.get_outputs()[0]
    assert out.device_name() == "cuda" and out.data_ptr() == y_dev.data_ptr()
    np.testing.assert_allclose(y_dev.numpy(), ort_run(model, {"x": X})[0], rtol=1e-5,
                               atol=1e-6)
