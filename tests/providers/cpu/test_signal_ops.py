"""Signal ops (DFT, STFT, windows, MelWeightMatrix): onnx node cases and comparisons with
onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.providers.cpu.node_case_runner import (
    check_case,
    compare_with_ort,
    node_cases,
    run_model,
    single_node_model,
)

OPS = {"DFT", "STFT", "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


rng = np.random.default_rng(0)
REAL = rng.standard_normal((2, 8, 6, 1)).astype(np.float32)
CPLX = rng.standard_normal((2, 8, 6, 2)).astype(np.float32)


def _dft(opset, x, length, axis, **attrs):
    inputs = {"x": x, "L": None if length is None else np.array(length, np.int64)}
    if opset == 17:
        attrs["axis"] = axis
    else:
        inputs["axis"] = np.array(axis, np.int64)
    compare_with_ort("DFT", inputs, ["y"], opset, rtol=1e-4, atol=1e-4, **attrs)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("kind", ["real", "complex"])
@pytest.mark.parametrize("inverse", [0, 1])
@pytest.mark.parametrize("length", [None, 5, 12])
@pytest.mark.parametrize("axis", [1, 2, -2, -3])
def test_dft(opset, kind, inverse, length, axis):
    _dft(opset, REAL if kind == "real" else CPLX, length, axis, inverse=inverse)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("length", [None, 5, 12])
@pytest.mark.parametrize("axis", [1, 2, -2])
def test_rfft(opset, length, axis):
    _dft(opset, REAL, length, axis, onesided=1)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("length", [None, 8, 10])
def test_irfft(opset, length):
    # onnxruntime's IRFFT agrees with numpy's irfft (the spec's definition) for even
    # lengths up to 2 * (n - 1); for odd or longer lengths it returns other values.
    _dft(opset, CPLX, length, 2, inverse=1, onesided=1)


def test_irfft_odd_length_is_numpy_irfft():
    model = single_node_model("DFT", {"x": CPLX, "L": np.array(5, np.int64),
                                      "axis": np.array(2, np.int64)}, ["y"], 20,
                              inverse=1, onesided=1)
    got = run_model(model, {"x": CPLX, "L": np.array(5, np.int64),
                            "axis": np.array(2, np.int64)})[0]
    expected = np.fft.irfft(CPLX[..., 0] + 1j * CPLX[..., 1], n=5, axis=2)
    np.testing.assert_allclose(got[..., 0], expected, rtol=1e-5, atol=1e-6)


def test_dft_double_precision():
    x = rng.standard_normal((1, 16, 2))
    compare_with_ort("DFT", {"x": x, "L": None, "axis": np.array(1, np.int64)}, ["y"], 20,
                     rtol=1e-10, atol=1e-12)


SIGNAL = rng.standard_normal((2, 40, 1)).astype(np.float32)
SIGNAL_C = rng.standard_normal((2, 40, 2)).astype(np.float32)
WINDOW = np.hanning(16).astype(np.float32)


@pytest.mark.parametrize("kind", ["real", "complex"])
@pytest.mark.parametrize("onesided", [0, 1])
def test_stft(kind, onesided):
    s = SIGNAL if kind == "real" else SIGNAL_C
    for inputs in [{"st": np.array(5, np.int64), "w": WINDOW},
                   {"st": np.array(7, np.int64), "w": None, "L": np.array(10, np.int64)},
                   {"st": np.array(4, np.int64), "w": WINDOW, "L": np.array(16, np.int64)}]:
        compare_with_ort("STFT", dict({"s": s}, **inputs), ["y"], 17, rtol=1e-4, atol=1e-4,
                         onesided=onesided)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [1, 11, 10])  # float, double, float16
def test_windows(op, periodic, dtype):
    for n in [1, 2, 10, 33]:
        compare_with_ort(op, {"n": np.array(n, np.int64)}, ["y"], 17, rtol=1e-5, atol=1e-6,
                         periodic=periodic, output_datatype=dtype)


@pytest.mark.parametrize("args", [(8, 256, 16000, 0.0, 8000.0), (10, 512, 22050, 20.0, 4000.0),
                                  (3, 32, 8000, 100.0, 3000.0), (40, 400, 16000, 0.0, 8000.0)])
def test_mel_weight_matrix(args):
    n_mel, n_dft, rate, low, high = args
    inputs = {"a": np.array(n_mel, np.int64), "b": np.array(n_dft, np.int64),
              "c": np.array(rate, np.int64), "d": np.array(low, np.float32),
              "e": np.array(high, np.float32)}
    compare_with_ort("MelWeightMatrix", inputs, ["y"], 17)
