"""The C++ LSTM, GRU and RNN kernels against onnxruntime, on every ISA path this CPU has and
with 1 and 2 threads (each cap checked in a subprocess: the ISA is read once at import).

Cases sweep batch, hidden, input and sequence sizes with directions, both layouts, uneven
sequence lengths (some zero), initial states present or absent, bias absent, clip,
peepholes, input_forget and linear_before_reset; weights go to the kernel both packed as
constants and raw at run time. onnxruntime runs layout 1 as layout 0 on transposed tensors.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from onnx import TensorProto, helper

from providers.cpu import native
from providers.cpu.ops import rnn as rnn_ops
from tests.kernels.op_kernel_cases import run_script_capped

ferry_kernels = pytest.importorskip("ferry_kernels")
ort = pytest.importorskip("onnxruntime")

NAMES = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
LOWER = {"RNN": rnn_ops._rnn_native, "GRU": rnn_ops._gru_native,
         "LSTM": rnn_ops._lstm_native}


def ort_run(op, attrs, ins, n_out):
    """Outputs of onnxruntime for one node (inputs as graph inputs, layout 0)."""
    node_in = [NAMES[j] if v is not None else "" for j, v in enumerate(ins)]
    while node_in and not node_in[-1]:
        node_in.pop()
    outs = ["Y", "Y_h", "Y_c"][:n_out]
    graph_in = [helper.make_tensor_value_info(
        NAMES[j], TensorProto.INT32 if j == 4 else TensorProto.FLOAT, v.shape)
        for j, v in enumerate(ins) if v is not None]
    graph_out = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
    node = helper.make_node(op, node_in, outs, **attrs)
    model = helper.make_model(helper.make_graph([node], "g", graph_in, graph_out),
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {NAMES[j]: v for j, v in enumerate(ins) if v is not None})


def reference(op, attrs, ins, n_out):
    """onnxruntime's answer; layout 1 is run as layout 0 on transposed tensors."""
    if attrs.get("layout", 0) == 0:
        return ort_run(op, attrs, ins, n_out)
    a0 = dict(attrs, layout=0)
    ins0 = list(ins)
    for j in (0, 5, 6):
        if j < len(ins0) and ins0[j] is not None:
            ins0[j] = np.ascontiguousarray(np.swapaxes(ins0[j], 0, 1))
    out = ort_run(op, a0, ins0, n_out)
    return [np.transpose(out[0], (2, 0, 1, 3))] + [np.swapaxes(s, 0, 1) for s in out[1:]]


def make_case(rng, op, batch, hidden, inp, seq, direction, layout, lens_kind, init, bias,
              clip, extra):
    """Attributes and inputs (ONNX order, trailing absent ones cut) of one random case."""
    g = GATES[op]
    nd = 2 if direction == "bidirectional" else 1

    def rand(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = rand(seq, batch, inp) if layout == 0 else rand(batch, seq, inp)
    state = (nd, batch, hidden) if layout == 0 else (batch, nd, hidden)
    w = rand(nd, g * hidden, inp, scale=1.0 / np.sqrt(inp))
    r = rand(nd, g * hidden, hidden, scale=1.0 / np.sqrt(hidden))
    b = rand(nd, 2 * g * hidden, scale=0.5) if bias else None
    if lens_kind == "none":
        lens = None
    elif lens_kind == "full":
        lens = np.full(batch, seq, np.int32)
    else:  # uneven, with a zero length when there are several rows
        lens = rng.integers(1, seq + 1, batch).astype(np.int32)
        if batch > 2:
            lens[1] = 0
    ins = [x, w, r, b, lens, rand(*state) if init else None]
    attrs = {"hidden_size": hidden, "direction": direction, "layout": layout}
    if clip:
        attrs["clip"] = 0.8
    if op == "LSTM":
        ins += [rand(*state) if init else None, rand(nd, 3 * hidden) if extra else None]
        if extra and rng.random() < 0.5:
            attrs["input_forget"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = int(extra)
    while ins[-1] is None:
        ins.pop()
    return attrs, ins


def check(op, attrs, ins, pack, tag):
    """The lowering takes the case and the kernel matches onnxruntime."""
    n_out = 3 if op == "LSTM" else 2
    call = LOWER[op](ins, dict(attrs))
    assert call is not None and call.kernel == op, tag
    got = native.run_call(call, ins, pack_constants=pack)
    ref = reference(op, attrs, ins, n_out)
    for k, (a, e) in enumerate(zip(got, ref)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=2e-5,
                                   err_msg=f"{tag} output {k}")


# Run in a subprocess per ISA cap and thread count; imports the helpers above.
SCRIPT = textwrap.dedent("""
    import itertools
    import numpy as np
    import ferry_kernels as fk
    from tests.kernels.test_rnn import check, make_case
    fk.set_num_threads(int(THREADS))
    rng = np.random.default_rng(0)
    n = 0
    for op in ("RNN", "GRU", "LSTM"):
        grid = itertools.product([1, 3, 7], [1, 5, 16, 33, 64], [1, 4, 17])
        for i, (batch, hidden, seq) in enumerate(grid):
            inp = (1, 7, 32)[i % 3]
            direction = ("forward", "reverse", "bidirectional")[(i // 3) % 3]
            layout = (i // 9) % 2
            lens_kind = ("none", "uneven", "full")[i % 3 if i % 2 else (i // 2) % 3]
            init = bool(rng.integers(2))
            bias = i % 5 != 4
            clip = i % 4 == 1
            extra = bool(rng.integers(2))  # peepholes / linear_before_reset
            attrs, ins = make_case(rng, op, batch, hidden, inp, seq, direction, layout,
                                   lens_kind, init, bias, clip, extra)
            tag = (op, batch, hidden, inp, seq, direction, layout, lens_kind, init, bias,
                   clip, extra)
            check(op, attrs, ins, pack=i % 4 != 3, tag=tag)
            n += 1
    # Batch 2 (the two-row small product); batch 48: sgemm for the steps (R packed or raw)
    # and enough rows for the gate math to be split over the pool.
    for op, direction, batch in itertools.product(("RNN", "GRU", "LSTM"),
                                                  ("forward", "bidirectional"), (2, 48)):
        attrs, ins = make_case(rng, op, batch, 64, 16, 5, direction, 0, "uneven", True, True,
                               False, True)
        check(op, attrs, ins, pack=batch == 2 or direction == "forward",
              tag=(op, batch, direction))
        n += 1
    print("ok", fk.isa(), n)
""")


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("threads", [1, 2])
def test_rnn_kernels_match_onnxruntime(cap, threads):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(SCRIPT.replace("THREADS", str(threads)), cap)
    assert out.split() == ["ok", cap, str(3 * 45 + 12)]


# ---- in-process checks (active ISA) ---------------------------------------------------------


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("options", [
    {"clip": True, "extra": True, "init": True, "lens_kind": "uneven"},
    {"clip": False, "extra": True, "init": False, "lens_kind": "full"},
    {"clip": True, "extra": False, "init": True, "lens_kind": "none"},
])
def test_all_options_both_layouts(op, options):
    rng = np.random.default_rng(1)
    for layout in (0, 1):
        for direction in ("forward", "reverse", "bidirectional"):
            attrs, ins = make_case(rng, op, 5, 12, 6, 9, direction, layout, bias=True,
                                   **options)
            check(op, attrs, ins, pack=True, tag=(op, layout, direction, options))


def test_lstm_input_forget_with_and_without_peepholes():
    rng = np.random.default_rng(2)
    for with_p in (False, True):
        attrs, ins = make_case(rng, "LSTM", 3, 8, 4, 6, "bidirectional", 0, "uneven", True,
                               True, True, with_p)
        attrs["input_forget"] = 1
        check("LSTM", attrs, ins, pack=True, tag=("input_forget", with_p))


def test_lowering_declines_what_the_kernels_do_not_take():
    rng = np.random.default_rng(3)
    attrs, ins = make_case(rng, "LSTM", 2, 4, 3, 5, "forward", 0, "none", True, True, False,
                           False)
    assert rnn_ops._lstm_native(ins, dict(attrs)) is not None
    # Default activations spelled out (any case, once or per direction) are still taken.
    named = dict(attrs, activations=["Sigmoid", "Tanh", "TANH"])
    assert rnn_ops._lstm_native(ins, named) is not None
    assert rnn_ops._lstm_native(ins, dict(attrs, activations=["Relu", "Tanh", "Tanh"])) is None
    as64 = [v.astype(np.float64) if v is not None and v.dtype == np.float32 else v for v in ins]
    assert rnn_ops._lstm_native(as64, dict(attrs)) is None
    lens64 = list(ins) + [None] * (5 - len(ins))
    lens64[4] = np.full(2, 5, np.int64)
    assert rnn_ops._lstm_native(lens64, dict(attrs)) is None
    lens_bad = list(lens64)
    lens_bad[4] = np.array([5, 6], np.int32)
    assert rnn_ops._lstm_native(lens_bad, dict(attrs)) is None
    assert rnn_ops._lstm_native(ins, dict(attrs, hidden_size=5)) is None
    assert rnn_ops._lstm_native(ins, dict(attrs, clip=0.0)) is None


def test_kernel_rejects_out_of_range_lengths_at_run_time():
    rng = np.random.default_rng(4)
    attrs, ins = make_case(rng, "GRU", 2, 4, 3, 5, "forward", 0, "full", False, True, False,
                           False)
    call = rnn_ops._gru_native(ins, dict(attrs))
    kins = list(ins)
    kernel = native.make(call, [v.shape for v in kins], [v.dtype for v in kins], {})
    kins[4] = np.array([5, 9], np.int32)
    outs = [np.empty(s, np.float32) for s in call.output_shapes]
    with pytest.raises(ValueError):
        kernel.run(kins, outs)


def test_session_runs_constant_weights_on_the_kernel(monkeypatch):
    """Through InferenceSession with W, R, B as initializers (packed at plan time)."""
    from onnx import numpy_helper

    from providers.cpu import opset
    from runtime import InferenceSession

    lowered = []
    for op in ("LSTM", "GRU", "RNN"):
        impl = opset.get(op, "", 14)

        def spy(inputs, attrs, _lower=impl.native):
            call = _lower(inputs, attrs)
            lowered.append(None if call is None else call.kernel)
            return call

        monkeypatch.setattr(impl, "native", spy)
    rng = np.random.default_rng(5)
    for op in ("LSTM", "GRU", "RNN"):
        attrs, ins = make_case(rng, op, 3, 16, 8, 7, "bidirectional", 0, "uneven", True, True,
                               False, True)
        n_out = 3 if op == "LSTM" else 2
        outs = ["Y", "Y_h", "Y_c"][:n_out]
        consts = {1, 2, 3, 7}
        node_in = [NAMES[j] if v is not None else "" for j, v in enumerate(ins)]
        graph_in = [helper.make_tensor_value_info(
            NAMES[j], TensorProto.INT32 if j == 4 else TensorProto.FLOAT, v.shape)
            for j, v in enumerate(ins) if v is not None and j not in consts]
        inits = [numpy_helper.from_array(v, NAMES[j]) for j, v in enumerate(ins)
                 if v is not None and j in consts]
        graph_out = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
        node = helper.make_node(op, node_in, outs, **attrs)
        model = helper.make_model(
            helper.make_graph([node], "g", graph_in, graph_out, initializer=inits),
            opset_imports=[helper.make_opsetid("", 14)])
        model.ir_version = 8
        feeds = {NAMES[j]: v for j, v in enumerate(ins) if v is not None and j not in consts}
        sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
        for _ in range(2):  # the second run goes through the compiled plan
            got = sess.run(None, feeds)
            ref = reference(op, attrs, ins, n_out)
            for a, e in zip(got, ref):
                np.testing.assert_allclose(a, e, rtol=1e-4, atol=2e-5)
        assert lowered and lowered[-1] == op


def test_session_with_only_the_final_state_asked_for():
    """Y and Y_c unnamed: the kernel still writes them (scratch), Y_h is right."""
    from onnx import numpy_helper

    from runtime import InferenceSession

    rng = np.random.default_rng(6)
    attrs, ins = make_case(rng, "LSTM", 3, 8, 5, 6, "reverse", 0, "uneven", True, True, False,
                           True)
    consts = {1, 2, 3, 7}
    node = helper.make_node("LSTM", [NAMES[j] if v is not None else ""
                                     for j, v in enumerate(ins)], ["", "Y_h"], **attrs)
    graph_in = [helper.make_tensor_value_info(
        NAMES[j], TensorProto.INT32 if j == 4 else TensorProto.FLOAT, v.shape)
        for j, v in enumerate(ins) if v is not None and j not in consts]
    inits = [numpy_helper.from_array(v, NAMES[j]) for j, v in enumerate(ins)
             if v is not None and j in consts]
    model = helper.make_model(
        helper.make_graph([node], "g", graph_in,
                          [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
                          initializer=inits),
        opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    sess = InferenceSession(model.SerializeToString(), providers=["cpu"])
    feeds = {NAMES[j]: v for j, v in enumerate(ins) if v is not None and j not in consts}
    ref = reference("LSTM", attrs, ins, 3)
    for _ in range(2):
        (got,) = sess.run(None, feeds)
        np.testing.assert_allclose(got, ref[1], rtol=1e-4, atol=2e-5)
