"""emulation: the TensorRT provider's logic that needs no TensorRT: option parsing and
validation, optimization-profile syntax, engine cache keys, and the fallback when TensorRT
is missing."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

from providers.tensorrt import keys
from providers.tensorrt.provider import TensorRTProvider, model_bytes
from runtime import InferenceSession, ProviderFallbackWarning, ir
from runtime.errors import ProviderOptionError
from tests.conftest import make_model, ort_run

pytestmark = pytest.mark.emulation


def _trt_missing() -> bool:
    try:
        import tensorrt  # noqa: F401
        return False
    except Exception:
        return True


# ---- options --------------------------------------------------------------------------------

def test_defaults_and_ort_style_strings():
    o = TensorRTProvider.parse_options({
        "trt_fp16_enable": "True", "trt_max_workspace_size": "2147483648",
        "trt_engine_cache_enable": "1", "trt_engine_cache_path": "/tmp/engines",
        "trt_profile_min_shapes": "x:1x3x8x8", "trt_profile_opt_shapes": "x:4x3x8x8",
        "trt_profile_max_shapes": "x:8x3x8x8"})
    assert o["trt_fp16_enable"] is True and o["trt_int8_enable"] is False
    assert o["trt_max_workspace_size"] == 1 << 31
    assert o["trt_engine_cache_enable"] and o["trt_engine_cache_path"] == "/tmp/engines"
    d = TensorRTProvider.parse_options({})
    assert d["trt_fp16_enable"] is False and d["trt_engine_cache_enable"] is False
    assert d["trt_max_workspace_size"] == 1 << 30


@pytest.mark.parametrize("bad", [
    {"trt_fp16": True},                                  # unknown name
    {"trt_fp16_enable": "maybe"},                         # not a bool
    {"trt_max_workspace_size": 0},                        # not positive
    {"trt_int8_enable": True},                            # calibration not implemented
    {"trt_profile_min_shapes": "x:1x3"},                  # min without opt/max
    {"trt_profile_min_shapes": "x:1by3", "trt_profile_opt_shapes": "x:1x3",
     "trt_profile_max_shapes": "x:1x3"},                  # syntax
    {"trt_profile_min_shapes": "x:4x3", "trt_profile_opt_shapes": "x:2x3",
     "trt_profile_max_shapes": "x:8x3"},                  # min > opt
    {"trt_profile_min_shapes": "x:1x3", "trt_profile_opt_shapes": "x:2x3",
     "trt_profile_max_shapes": "y:8x3"},                  # different inputs
    {"trt_profile_min_shapes": "x:1x3", "trt_profile_opt_shapes": "x:2x3x1",
     "trt_profile_max_shapes": "x:8x3"},                  # different ranks
])
def test_bad_options_raise(bad):
    with pytest.raises(ProviderOptionError):
        TensorRTProvider.parse_options(bad)


def test_profile_shape_syntax():
    assert keys.parse_profile_shapes("a:1x3x224x224, b:1x128,c:") == {
        "a": (1, 3, 224, 224), "b": (1, 128), "c": ()}
    assert keys.parse_profile_shapes("") == {}
    assert keys.parse_profile_shapes("input:0:1x2") == {"input:0": (1, 2)}  # names with ':'
    with pytest.raises(ProviderOptionError):
        keys.parse_profile_shapes("a:1x2,a:1x3")


# ---- engine cache keys -------------------------------------------------------------------

def _graph(scale=2.0, path_name="g"):
    nodes = [helper.make_node("Mul", ["x", "s"], ["y"], name="mul")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 4])],
                       [("y", TensorProto.FLOAT, [1, 4])],
                       initializers=[("s", np.full(4, scale, np.float32))], name=path_name)
    return ir.graph_from_onnx(model.graph, opsets={"": 17})


def test_cache_key_covers_every_ingredient():
    g = model_bytes(_graph())
    base = {"subgraph_bytes": g, "input_shapes": {"x": (1, 4)}, "precision": "fp32",
            "trt_version": "10.3.0", "gpu_name": "NVIDIA H100"}
    k = keys.engine_cache_key(**base)
    assert len(k) == 64 and k == keys.engine_cache_key(**base)
    variants = [
        {"subgraph_bytes": model_bytes(_graph(scale=3.0))},   # other weights
        {"input_shapes": {"x": (2, 4)}},
        {"input_shapes": {"x": ((1, 4), (4, 4), (8, 4))}},   # a profile
        {"precision": keys.precision_tag(True, False)},
        {"trt_version": "10.4.0"},
        {"gpu_name": "NVIDIA A100"},
    ]
    seen = {k}
    for v in variants:
        other = keys.engine_cache_key(**{**base, **v})
        assert other not in seen, v
        seen.add(other)


def test_cache_key_is_order_insensitive_and_serialization_is_stable():
    g1, g2 = model_bytes(_graph()), model_bytes(_graph())
    assert g1 == g2
    a = keys.engine_cache_key(g1, {"x": (1, 4), "z": (2,)}, "fp32", "10", "gpu")
    b = keys.engine_cache_key(g1, {"z": (2,), "x": (1, 4)}, "fp32", "10", "gpu")
    assert a == b


def test_cache_key_never_depends_on_the_model_path(tmp_path):
    """The same model saved at two paths gives the same subgraph bytes, hence the same key;
    the key's inputs have no path at all."""
    import onnx

    model = make_model([helper.make_node("Relu", ["x"], ["y"])],
                       [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    p1, p2 = tmp_path / "a" / "m.onnx", tmp_path / "b" / "m.onnx"
    for p in (p1, p2):
        p.parent.mkdir()
        onnx.save(model, str(p))
    g1 = ir.graph_from_onnx(onnx.load(str(p1)).graph, opsets={"": 17})
    g2 = ir.graph_from_onnx(onnx.load(str(p2)).graph, opsets={"": 17})
    b1, b2 = model_bytes(g1), model_bytes(g2)
    assert b1 == b2 and str(tmp_path).encode() not in b1
    assert keys.engine_cache_key(b1, {"x": (2,)}, "fp32", "10", "g") == \
        keys.engine_cache_key(b2, {"x": (2,)}, "fp32", "10", "g")


def test_subgraph_bytes_ignore_names_and_unrelated_value_info():
    import dataclasses

    g = _graph(path_name="first_model")
    other = dataclasses.replace(_graph(path_name="second_model"), value_info={
        **_graph().value_info, "unrelated": ir.ValueInfo("unrelated", TensorProto.FLOAT, (3,))})
    assert model_bytes(g) == model_bytes(other)
    assert model_bytes(g) != model_bytes(_graph(scale=5.0))


def test_file_names():
    k = "ab" * 32
    assert keys.engine_file_name(k).startswith("ferry_trt_") and k[:40] in keys.engine_file_name(k)
    assert "/" not in keys.timing_cache_file_name("10.3", "NVIDIA H100 80GB/HBM3")
    assert keys.precision_tag(False, False) == "fp32"
    assert keys.precision_tag(True, False) == "fp32+fp16"


# ---- availability ------------------------------------------------------------------------

@pytest.mark.skipif(not _trt_missing(), reason="TensorRT is installed here")
def test_unavailable_with_reason_and_fallback(monkeypatch):
    monkeypatch.setenv("FERRY_CUDA_EMULATION", "1")  # cuda (emulated) is the next in chain
    monkeypatch.setattr(logging.getLogger("ferry"), "level", logging.ERROR)
    ok, reason = TensorRTProvider.availability()
    assert not ok and "TensorRT is not importable" in reason
    model = make_model([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("CumSum", ["r", "ax"], ["y"])],
                       [("x", TensorProto.FLOAT, [2, 3])], [("y", TensorProto.FLOAT, [2, 3])],
                       initializers=[("ax", np.array(1, np.int64))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = InferenceSession(model.SerializeToString(),
                                providers=[("tensorrt", {"trt_fp16_enable": True}), "cuda",
                                           "cpu"])
    fb = [w for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    assert len(fb) == 1 and "tensorrt" in str(fb[0].message)
    assert sess.get_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    # Option errors are errors even when the provider is unavailable.
    with pytest.raises(ProviderOptionError):
        InferenceSession(model.SerializeToString(),
                         providers=[("tensorrt", {"trt_int8_enable": True}), "cpu"])


# ---- profiles from the session's declared input shape ranges --------------------------------

def _ranges(**kw):
    from runtime.options import make_shape_range

    return {name: make_shape_range(name, *shapes) for name, shapes in kw.items()}


def test_profile_from_declared_ranges():
    ranges = _ranges(x=([1, 3, 8, 8], [8, 3, 8, 8], [4, 3, 8, 8]))
    spec = keys.profile_from_ranges([("x", ("N", 3, 8, 8)), ("s", (1, 4))], ranges)
    assert spec == {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)),
                    "s": ((1, 4), (1, 4), (1, 4))}
    # A dynamic input (an inner value of the model) without a declared range: no profile.
    assert keys.profile_from_ranges([("x", ("N", 3, 8, 8)), ("h", ("K", 4))], ranges) is None
    # Rank or fixed dims that the range does not fit: no profile from it.
    assert keys.profile_from_ranges([("x", ("N", 3))], ranges) is None
    assert keys.profile_from_ranges([("x", ("N", 5, 8, 8))], ranges) is None
    # A subgraph dim fixed inside the range is exact in the profile.
    wide = _ranges(x=([1, 1], [8, 8], [4, 4]))
    assert keys.profile_from_ranges([("x", ("N", 2))], wide) == {
        "x": ((1, 2), (4, 2), (8, 2))}


def _partition_stub(profiles: dict, ranges: dict, inputs):
    from providers.tensorrt.provider import TrtPartition

    class _Provider:
        pass

    provider = _Provider()
    provider.profiles = {k: keys.parse_profile_shapes(profiles.get(k, ""))
                         for k in ("min", "opt", "max")}
    part = object.__new__(TrtPartition)  # no TensorRT: only the profile logic is exercised
    part.provider = provider
    part.shape_ranges = ranges
    part.graph = ir.Graph(name="g", nodes=[], inputs=[
        ir.ValueInfo(n, TensorProto.FLOAT, s) for n, s in inputs], outputs=[])
    return part


def test_partition_profile_uses_ranges_only_without_trt_profile_options():
    ranges = _ranges(x=([1, 4], [16, 4], [8, 4]))
    part = _partition_stub({}, ranges, [("x", ("N", 4))])
    assert part._profile_spec() == {"x": ((1, 4), (8, 4), (16, 4))}
    assert part._fits_profile(part._profile_spec(), {"x": (16, 4)})
    assert not part._fits_profile(part._profile_spec(), {"x": (17, 4)})
    given = {"min": "x:2x4", "opt": "x:2x4", "max": "x:4x4"}
    part = _partition_stub(given, ranges, [("x", ("N", 4))])
    assert part._profile_spec() == {"x": ((2, 4), (2, 4), (4, 4))}
    # Neither: per-shape engines, as before.
    assert _partition_stub({}, {}, [("x", ("N", 4))])._profile_spec() is None


def test_profile_from_ranges_keys_the_engine_cache():
    ranges = _ranges(x=([1, 4], [16, 4], [8, 4]))
    spec = keys.profile_from_ranges([("x", ("N", 4))], ranges)
    narrow = keys.profile_from_ranges([("x", ("N", 4))], _ranges(x=([1, 4], [8, 4])))
    a = keys.engine_cache_key(b"g", spec, "fp32", "10.0", "gpu")
    b = keys.engine_cache_key(b"g", narrow, "fp32", "10.0", "gpu")
    assert a != b
