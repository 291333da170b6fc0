"""RNN, GRU and LSTM: onnx node cases and comparisons with onnxruntime."""

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

CASES = node_cases({"RNN", "GRU", "LSTM"})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
T, B, IN, H = 5, 3, 4, 6


def _inputs(op, dirs, seq=None, with_init=True, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = GATES[op]

    def rand(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    inputs = {"X": rand(T, B, IN), "W": rand(dirs, g * H, IN, scale=0.5),
              "R": rand(dirs, g * H, H, scale=0.5), "B": rand(dirs, 2 * g * H, scale=0.5),
              "sequence_lens": seq, "initial_h": rand(dirs, B, H) if with_init else None}
    if op == "LSTM":
        inputs["initial_c"] = rand(dirs, B, H) if with_init else None
        inputs["P"] = rand(dirs, 3 * H)
    return inputs


def _outputs(op):
    return ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("seq", [None, [5, 2, 3], [5, 2, 0]], ids=["full", "lens", "zero_len"])
def test_directions_and_lengths(op, direction, seq):
    dirs = 2 if direction == "bidirectional" else 1
    seq = None if seq is None else np.array(seq, np.int32)
    compare_with_ort(op, _inputs(op, dirs, seq), _outputs(op), 14, rtol=1e-4, atol=1e-5,
                     hidden_size=H, direction=direction)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_clip_and_no_initial_state(op):
    compare_with_ort(op, _inputs(op, 2, np.array([4, 5, 1], np.int32), with_init=False),
                     _outputs(op), 14, rtol=1e-4, atol=1e-5, hidden_size=H,
                     direction="bidirectional", clip=0.7)


def test_gru_linear_before_reset():
    compare_with_ort("GRU", _inputs("GRU", 2, np.array([5, 2, 3], np.int32)), ["Y", "Y_h"], 14,
                     rtol=1e-4, atol=1e-5, hidden_size=H, direction="bidirectional",
                     linear_before_reset=1)


def test_lstm_input_forget():
    compare_with_ort("LSTM", _inputs("LSTM", 2, np.array([5, 2, 3], np.int32)),
                     ["Y", "Y_h", "Y_c"], 14, rtol=1e-4, atol=1e-5, hidden_size=H,
                     direction="bidirectional", input_forget=1)


def test_only_some_outputs():
    compare_with_ort("LSTM", _inputs("LSTM", 1), ["", "Y_h"], 14, rtol=1e-4, atol=1e-5,
                     hidden_size=H)


@pytest.mark.parametrize("op,acts,alpha,beta", [
    ("RNN", ["LeakyRelu"], [0.3], None),
    ("RNN", ["Relu"], None, None),
    ("RNN", ["Affine", "HardSigmoid"], [0.3, 0.4], [0.1, 0.2]),
    ("RNN", ["LeakyRelu", "HardSigmoid"], [0.3, 0.4], [0.1]),
    ("GRU", ["HardSigmoid", "Elu"], [0.3, 0.4], [0.1]),
    ("GRU", ["Sigmoid", "ScaledTanh"], [0.3], [0.6]),
    ("GRU", ["Softsign", "Softplus"], None, None),
    ("LSTM", ["HardSigmoid", "ThresholdedRelu", "Tanh"], [0.3, 0.2], [0.4]),
    ("LSTM", ["HardSigmoid", "Elu", "LeakyRelu"], None, None),
])
def test_activations(op, acts, alpha, beta):
    dirs = 2 if len(acts) == 2 and op == "RNN" else 1
    attrs = {"activations": acts}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    compare_with_ort(op, _inputs(op, dirs), _outputs(op), 14, rtol=1e-4, atol=1e-5,
                     hidden_size=H, direction="bidirectional" if dirs == 2 else "forward",
                     **attrs)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_layout_1_matches_layout_0(op):
    # onnxruntime's CPU kernels reject layout=1: check it against our (ORT-checked) layout 0.
    inputs = _inputs(op, 2, np.array([5, 2, 3], np.int32))
    m0 = single_node_model(op, inputs, _outputs(op), 14, hidden_size=H,
                           direction="bidirectional")
    ref = run_model(m0, {k: v for k, v in inputs.items() if v is not None})
    batchwise = dict(inputs)
    batchwise["X"] = np.swapaxes(inputs["X"], 0, 1).copy()
    for k in ("initial_h", "initial_c"):
        if k in inputs:
            batchwise[k] = np.swapaxes(inputs[k], 0, 1).copy()
    m1 = single_node_model(op, batchwise, _outputs(op), 14, hidden_size=H,
                           direction="bidirectional", layout=1)
    got = run_model(m1, {k: v for k, v in batchwise.items() if v is not None})
    np.testing.assert_allclose(got[0], np.transpose(ref[0], (2, 0, 1, 3)), rtol=1e-6)
    for g, r in zip(got[1:], ref[1:]):
        np.testing.assert_allclose(g, np.swapaxes(r, 0, 1), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_float_types_keep_dtype(dtype):
    inputs = _inputs("GRU", 1, dtype=dtype)
    model = single_node_model("GRU", inputs, ["Y", "Y_h"], 14, hidden_size=H)
    got = run_model(model, {k: v for k, v in inputs.items() if v is not None})
    ref_in = {k: (None if v is None else v.astype(np.float64)) for k, v in inputs.items()}
    ref_model = single_node_model("GRU", ref_in, ["Y", "Y_h"], 14, hidden_size=H)
    ref = run_model(ref_model, {k: v for k, v in ref_in.items() if v is not None})
    for g, r in zip(got, ref):
        assert g.dtype == dtype
        np.testing.assert_allclose(g.astype(np.float64), r, rtol=1e-2, atol=1e-2)
