"""Helpers shared by the CUDA provider's tests and benchmarks/gpu_check.py: sessions on the
cuda provider, and the onnx node conformance cases it claims (every node on cuda)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx

import runtime  # noqa: F401  (first: providers.base imports runtime)
from providers.cuda.kernels import lookup
from providers.cuda.provider import unsupported_reason
from runtime import ir

# Cases where the onnx reference and onnxruntime (our oracle) disagree; ferry follows
# onnxruntime. ORT divides by (output length - 1) for align_corners; the onnx reference by
# (input length * scale - 1).
ORT_DISAGREES = {"test_resize_downsample_scales_linear_align_corners"}


@functools.lru_cache(maxsize=1)
def all_node_cases() -> tuple:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(c for c in collect_testcases(None) if c.model is not None)


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}


def claimed_by_cuda(model: onnx.ModelProto) -> bool:
    """Whether the cuda provider claims every node of the model (no session needed)."""
    opsets = _opsets(model)
    for n in model.graph.node:
        if lookup(n.op_type, n.domain, opsets.get(n.domain or "", 1)) is None:
            return False
    try:
        graph = ir.graph_from_onnx(model.graph, opsets=opsets)
    except Exception:
        return False
    return all(unsupported_reason(graph, n) is None for n in graph.nodes)


def claimed_cases() -> list:
    return [c for c in all_node_cases() if claimed_by_cuda(c.model)]


def to_value(v):
    if isinstance(v, onnx.TensorProto):
        return ir.tensor_to_numpy(v)
    return v


def cuda_session(model, **cuda_options):
    """A session with every node on the cuda provider (strict: no CPU fallback)."""
    from runtime import InferenceSession, SessionOptions

    so = SessionOptions()
    so.strict_providers = True
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return InferenceSession(data, so, providers=[("cuda", cuda_options)])


def check_case(case) -> None:
    """Run one conformance case on the cuda provider and compare with its expected outputs."""
    sess = cuda_session(case.model)
    names = [i.name for i in sess.get_inputs()]
    for inputs, expected in case.data_sets:
        feeds = dict(zip(names, [to_value(v) for v in inputs]))
        got = sess.run(None, feeds)
        for i, (e, g) in enumerate(zip(expected, got)):
            e = np.asarray(to_value(e))
            assert g.dtype == e.dtype, f"{case.name} output {i}: dtype {g.dtype} != {e.dtype}"
            assert g.shape == e.shape, f"{case.name} output {i}: shape {g.shape} != {e.shape}"
            if e.dtype.kind in "biu":
                np.testing.assert_array_equal(g, e, err_msg=f"{case.name} output {i}")
            else:
                np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64),
                                           rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6),
                                           err_msg=f"{case.name} output {i}")
