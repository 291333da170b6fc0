"""Fuzzing (issue 9): mutated model bytes and mutated attributes must end in a result or in a
typed ferry error (runtime.errors.FerryError), never in another exception type.

Session creation and the run happen in-process: a crash in native code would take pytest down,
which is how such a bug shows up here. Bounded and reproducible: 200 derandomized examples per
test, no deadline; every tensor is capped at 16 MiB (a MemoryError behind a typed error still
fails: that is an allocation bomb), the address space is capped a few GiB above its size so a
bomb cannot summon the OOM killer, and RunOptions.terminate stops a mutated Loop that never ends.
To explore further, run a test with more, random examples, e.g. settings(max_examples=3000,
derandomize=False).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from runtime import InferenceSession, RunOptions, SessionOptions
from runtime.errors import FerryError
from tests.conftest import make_model

F = TensorProto.FLOAT
_CAP = 16 << 20
_SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))


def _seed_models() -> list[onnx.ModelProto]:
    """Small valid models covering common ops, attributes of every kind, and a subgraph."""
    rng = np.random.default_rng(0)
    conv = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1],
                          dilations=[1, 1], group=1),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1, alpha=1.0, beta=1.0)],
        [("x", F, ["N", 2, 4, 4])], [("y", F, ["N", 3])],
        [("w", rng.standard_normal((4, 2, 3, 3)).astype(np.float32)),
         ("b", rng.standard_normal(4).astype(np.float32)),
         ("gw", rng.standard_normal((3, 16)).astype(np.float32)),
         ("gb", rng.standard_normal(3).astype(np.float32))])
    shapes = make_model(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("Gather", ["s", "i"], ["d"], axis=0),
         helper.make_node("Concat", ["d", "m"], ["t"], axis=0),
         helper.make_node("Reshape", ["x", "t"], ["r"]),
         helper.make_node("Transpose", ["r"], ["tr"], perm=[1, 0]),
         helper.make_node("Softmax", ["tr"], ["sm"], axis=-1),
         helper.make_node("ReduceSum", ["sm", "ax"], ["y"], keepdims=1),
         helper.make_node("Slice", ["x", "st", "en", "ax"], ["sl"]),
         helper.make_node("Split", ["sl"], ["s1", "s2"], axis=1, num_outputs=2),
         helper.make_node("Mul", ["s1", "s2"], ["z"])],
        [("x", F, ["N", 4])], [("y", F, None), ("z", F, None)],
        [("i", np.array([0], np.int64)), ("m", np.array([-1], np.int64)),
         ("ax", np.array([1], np.int64)), ("st", np.array([0], np.int64)),
         ("en", np.array([4], np.int64))], opset=18)
    then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", F, None)])
    else_g = helper.make_graph([helper.make_node("Abs", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", F, None)])
    cond = make_model(
        [helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
         helper.make_node("Greater", ["mx", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["i"], then_branch=then_g, else_branch=else_g),
         helper.make_node("LayerNormalization", ["i", "g", "bb"], ["y"], axis=-1,
                          epsilon=1e-5),
         helper.make_node("TopK", ["y", "k"], ["v", "idx"], axis=-1, largest=1),
         helper.make_node("Cast", ["idx"], ["fi"], to=F),
         helper.make_node("Clip", ["fi", "lo", "hi"], ["cl"])],
        [("x", F, ["N", 4])], [("v", F, None), ("cl", F, None)],
        [("zero", np.array(0, np.float32)), ("g", np.ones(4, np.float32)),
         ("bb", np.zeros(4, np.float32)), ("k", np.array([2], np.int64)),
         ("lo", np.array(0, np.float32)), ("hi", np.array(2, np.float32))])
    # Ops whose output size comes from input values (the allocation-bomb family), fed from
    # constants that the mutations can change.
    sizes = make_model(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("ConstantOfShape", ["s"], ["zeros"],
                          value=onnx.numpy_helper.from_array(np.array([0.5], np.float32))),
         helper.make_node("Expand", ["x", "eshape"], ["ex"]),
         helper.make_node("Tile", ["ex", "reps"], ["ti"]),
         helper.make_node("Pad", ["ti", "pads"], ["pa"], mode="reflect"),
         helper.make_node("Resize", ["pa", "", "scales"], ["rs"], mode="linear"),
         helper.make_node("ReduceMax", ["rs"], ["m"], keepdims=0),
         helper.make_node("Range", ["r0", "m", "r1"], ["rg"]),
         helper.make_node("Add", ["x", "zeros"], ["y"]),
         helper.make_node("OneHot", ["idx", "depth", "vals"], ["oh"], axis=-1),
         helper.make_node("Cast", ["rg"], ["z"], to=F)],
        [("x", F, ["N", 4])], [("y", F, None), ("z", F, None), ("oh", F, None)],
        [("eshape", np.array([2, 1, 4], np.int64)), ("reps", np.array([1, 2, 1], np.int64)),
         ("pads", np.array([0, 1, 1, 0, 1, 1], np.int64)),
         ("scales", np.array([1, 1.5, 2], np.float32)), ("r0", np.array(0, np.float32)),
         ("r1", np.array(0.25, np.float32)), ("idx", np.array([0, 2, 1], np.int64)),
         ("depth", np.array(4, np.int64)), ("vals", np.array([0, 1], np.float32))],
        opset=13)
    # Loops, scans, recurrent and scatter/gather ops.
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("ReduceSum", ["acc_out"], ["scan_out"], keepdims=0)],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", F, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F, None),
         helper.make_tensor_value_info("scan_out", F, [])])
    gru_w = rng.standard_normal((1, 9, 4)).astype(np.float32)
    gru_r = rng.standard_normal((1, 9, 3)).astype(np.float32)
    control = make_model(
        [helper.make_node("Loop", ["trip", "true", "x"], ["acc", "sums"], body=body),
         helper.make_node("Unsqueeze", ["acc", "ax0"], ["seq"]),
         helper.make_node("GRU", ["seq", "gw", "gr"], ["", "h"], hidden_size=3,
                          linear_before_reset=1),
         helper.make_node("GatherND", ["x", "nd"], ["g"], batch_dims=0),
         helper.make_node("ScatterElements", ["x", "se_idx", "se_upd"], ["sc"], axis=1,
                          reduction="add"),
         helper.make_node("Einsum", ["x", "x"], ["ein"], equation="ij,kj->ik"),
         helper.make_node("CumSum", ["sc", "ax1"], ["cs"], exclusive=1, reverse=1),
         helper.make_node("Where", ["true", "cs", "sc"], ["y"])],
        [("x", F, ["N", 4])],
        [("sums", F, None), ("h", F, None), ("g", F, None), ("ein", F, None), ("y", F, None)],
        [("trip", np.array(3, np.int64)), ("true", np.array(True)),
         ("ax0", np.array([0], np.int64)), ("ax1", np.array(1, np.int64)),
         ("gw", gru_w), ("gr", gru_r), ("nd", np.array([[0, 1], [1, 3]], np.int64)),
         ("se_idx", np.array([[0, 3], [1, 1]], np.int64)),
         ("se_upd", np.ones((2, 2), np.float32))], opset=16)
    return [conv, shapes, cond, sizes, control]


SEEDS = _seed_models()
SEED_BYTES = [m.SerializeToString() for m in SEEDS]
FEED_SHAPES = [(2, 2, 4, 4), (3, 4), (3, 4), (3, 4), (3, 4)]


def _feeds(model: onnx.ModelProto, seed_index: int) -> dict:
    rng = np.random.default_rng(1)
    return {"x": rng.standard_normal(FEED_SHAPES[seed_index]).astype(np.float32)}


@contextlib.contextmanager
def _address_space_headroom(extra: int = 4 << 30):
    """Cap this process's address space a few GiB above its current size while fuzzing, so
    that an allocation bomb becomes a MemoryError here instead of the OOM killer ending the
    whole test run. Linux only; elsewhere nothing is capped."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            vsize = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        old = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        yield
        return
    want = vsize + extra
    if old[0] != resource.RLIM_INFINITY and old[0] <= want:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (want, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def _memory_error_in(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MemoryError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _create_and_run(data, feeds) -> None:
    """Create a session and run it once; only FerryError may escape, and never one caused by
    running out of memory (every tensor is capped at 16 MiB: that would be a bomb)."""
    so = SessionOptions()
    so.memory_limit_bytes = _CAP
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"), _address_space_headroom():
            warnings.simplefilter("ignore")
            sess = InferenceSession(data, so, providers=["cpu"])
            names = {i.name for i in sess.get_inputs()}
            # A mutation may make a Loop run forever (no trip count, a condition that stays
            # true): legal ONNX, so the run is stopped with RunOptions.terminate after a while.
            ro = RunOptions()
            stop = threading.Timer(10.0, setattr, (ro, "terminate", True))
            stop.start()
            try:
                sess.run(None, {k: v for k, v in feeds.items() if k in names} if names else {},
                         ro)
            finally:
                stop.cancel()
    except FerryError as exc:
        assert not _memory_error_in(exc), f"allocation bomb under a 16 MiB cap: {exc}"


# ---- byte-level mutations ---------------------------------------------------------------------

_byte_edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 8)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("dup"), st.integers(0, 1 << 30), st.integers(1, 32)),
)


def _apply_edits(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in edits:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= arg
        elif kind == "set":
            buf[pos] = arg
        elif kind == "delete":
            del buf[pos:pos + arg]
        elif kind == "insert":
            buf[pos:pos] = arg
        else:
            buf[pos:pos] = buf[pos:pos + arg]
    return bytes(buf)


@_SETTINGS
@given(which=st.integers(0, len(SEEDS) - 1), edits=st.lists(_byte_edit, min_size=1, max_size=4))
def test_mutated_bytes_give_results_or_typed_errors(which, edits):
    data = _apply_edits(SEED_BYTES[which], edits)
    _create_and_run(data, _feeds(SEEDS[which], which))


# ---- structure-aware mutations: attributes, dims, names, types ---------------------------------

def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.HasField("g"):
                yield from _all_nodes(a.g)


_INTS = st.one_of(st.integers(-4, 8), st.sampled_from([0, -1, 2**31 - 1, -2**31, 2**62, -2**63]))
_FLOATS = st.one_of(st.floats(-10, 10), st.sampled_from([float("nan"), float("inf"), -0.0, 1e38]))

_mutation = st.one_of(
    st.tuples(st.just("int"), st.integers(0, 1 << 20), _INTS),
    st.tuples(st.just("ints"), st.integers(0, 1 << 20), st.lists(_INTS, max_size=6)),
    st.tuples(st.just("float"), st.integers(0, 1 << 20), _FLOATS),
    st.tuples(st.just("attr_type"), st.integers(0, 1 << 20), st.integers(0, 14)),
    st.tuples(st.just("drop_attr"), st.integers(0, 1 << 20), st.just(None)),
    st.tuples(st.just("dim"), st.integers(0, 1 << 20), st.sampled_from([0, 1, 3, -1, 2**40])),
    st.tuples(st.just("elem_type"), st.integers(0, 1 << 20), st.integers(0, 40)),
    st.tuples(st.just("rename_input"), st.integers(0, 1 << 20),
              st.sampled_from(["", "x", "y", "w", "nope"])),
    st.tuples(st.just("op_type"), st.integers(0, 1 << 20),
              st.sampled_from(["Relu", "Add", "Conv", "If", "Loop", "Reshape", "Identity",
                               "ConstantOfShape", "Unknown"])),
    st.tuples(st.just("init_dims"), st.integers(0, 1 << 20),
              st.lists(st.integers(0, 5), max_size=4)),
    st.tuples(st.just("opset"), st.integers(0, 1 << 20), st.integers(1, 30)),
)


def _pick(seq, i):
    seq = list(seq)
    return seq[i % len(seq)] if seq else None


def _mutate(model: onnx.ModelProto, kind: str, where: int, value) -> None:
    nodes = list(_all_nodes(model.graph))
    node = _pick(nodes, where)
    if kind == "attr_type":
        attr = _pick([a for n in nodes for a in n.attribute], where)
        if attr is not None:
            attr.type = value
    elif kind in ("int", "ints", "float", "drop_attr"):
        want = {"int": onnx.AttributeProto.INT, "ints": onnx.AttributeProto.INTS,
                "float": onnx.AttributeProto.FLOAT}.get(kind)
        attrs = [a for n in nodes for a in n.attribute if want is None or a.type == want]
        attr = _pick(attrs, where)
        if attr is None:
            return
        if kind == "int":
            attr.i = value
        elif kind == "ints":
            del attr.ints[:]
            attr.ints.extend(value)
        elif kind == "float":
            attr.f = value
        else:
            owner = next(n for n in nodes if attr in n.attribute)
            owner.attribute.remove(attr)
    elif kind == "dim":
        vis = list(model.graph.input) + list(model.graph.output)
        vi = _pick(vis, where)
        dim = _pick(vi.type.tensor_type.shape.dim, where // 5)
        if dim is not None:
            dim.dim_value = value
    elif kind == "elem_type":
        vis = list(model.graph.input) + list(model.graph.output) + list(model.graph.initializer)
        vi = _pick(vis, where)
        if isinstance(vi, onnx.TensorProto):
            vi.data_type = value
        else:
            vi.type.tensor_type.elem_type = value
    elif kind == "rename_input":
        if node is not None and node.input:
            node.input[where % len(node.input)] = value
    elif kind == "op_type":
        if node is not None:
            node.op_type = value
    elif kind == "init_dims":
        init = _pick(model.graph.initializer, where)
        if init is not None:
            del init.dims[:]
            init.dims.extend(value)
    elif kind == "opset":
        model.opset_import[0].version = value


@_SETTINGS
@given(which=st.integers(0, len(SEEDS) - 1), mutations=st.lists(_mutation, min_size=1,
                                                                 max_size=3))
def test_mutated_structure_gives_results_or_typed_errors(which, mutations):
    model = onnx.ModelProto()
    model.CopyFrom(SEEDS[which])
    for kind, where, value in mutations:
        _mutate(model, kind, where, value)
    _create_and_run(model.SerializeToString(), _feeds(SEEDS[which], which))


# ---- feeds: any array against a valid model ----------------------------------------------------

_dtypes = st.sampled_from([np.float32, np.float32, np.float32, np.float64, np.int64, np.int32,
                           np.uint8, np.bool_, np.float16])
_fills = st.sampled_from(["normal", "zeros", "nan", "inf", "huge", "tiny"])


def _fill(shape, dtype, how):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    if how == "zeros":
        x = np.zeros(shape)
    elif how == "nan":
        x = np.where(x > 0.5, np.nan, x)
    elif how == "inf":
        x = np.where(x > 0, np.inf, -np.inf)
    elif how == "huge":
        x = x * 1e38
    elif how == "tiny":
        x = x * 1e-40
    with np.errstate(all="ignore"):
        return x.astype(dtype)


@_SETTINGS
@given(which=st.integers(0, len(SEEDS) - 1), dtype=_dtypes, fill=_fills,
       batch=st.integers(0, 4), exact=st.booleans(),
       shape=st.lists(st.integers(0, 5), max_size=5))
def test_arbitrary_feeds_give_results_or_typed_errors(which, dtype, fill, batch, exact, shape):
    """Any dtype, rank, size (0 included) and special values: a result or InvalidArgument;
    float32 inputs of a valid shape and ordinary values also match onnxruntime."""
    if exact:
        shape = (batch,) + FEED_SHAPES[which][1:]
    x = _fill(tuple(shape), dtype, fill)
    _create_and_run(SEED_BYTES[which], {"x": x})
    if exact and dtype == np.float32 and fill in ("normal", "zeros"):
        import onnxruntime as ort

        try:
            want = ort.InferenceSession(SEED_BYTES[which],
                                        providers=["CPUExecutionProvider"]).run(None, {"x": x})
        except Exception:  # noqa: BLE001 - onnxruntime refuses it (e.g. an empty batch): so may we
            return
        got = InferenceSession(SEED_BYTES[which], providers=["cpu"]).run(None, {"x": x})
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_seed_models_are_valid_and_run():
    """The seeds themselves load and run (so the mutations start from something that works)."""
    import onnxruntime as ort

    for i, data in enumerate(SEED_BYTES):
        feeds = _feeds(SEEDS[i], i)
        got = InferenceSession(data, providers=["cpu"]).run(None, feeds)
        want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


# ---- regressions the fuzzers found -------------------------------------------------------------

# Each test below pins a bug the fuzzers found (numbers of .notes/H6_BUGS.md), all fixed.
# BUG-4, BUG-7, BUG-8: onnx's C++ shape inference aborted or segfaulted the process (negative
# declared dim feeding Slice; Split num_outputs != its outputs; GatherND batch_dims < 0). They run
# in a subprocess, so that a regression fails one test instead of ending the whole test run.
_NEG_DIM_SCRIPT = r'''
import numpy as np
from onnx import TensorProto, helper
from runtime import InferenceSession
from runtime.errors import FerryError
from tests.conftest import make_model

model = make_model([helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])],
                   [("x", TensorProto.FLOAT, ["N", -1])], [("y", TensorProto.FLOAT, None)],
                   [("st", np.array([0], np.int64)), ("en", np.array([4], np.int64)),
                    ("ax", np.array([1], np.int64))], opset=18)
try:
    InferenceSession(model.SerializeToString(), providers=["cpu"])
except FerryError as exc:
    print("typed:", type(exc).__name__)
'''


def _run_isolated(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a script in a fresh interpreter with this checkout importable: a crash (abort,
    segfault) there fails the test instead of ending the test run."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in sys.path if p])
    return subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_negative_declared_dim_is_a_typed_error_not_a_crash():
    proc = _run_isolated(_NEG_DIM_SCRIPT)
    assert proc.returncode == 0, f"the process died (rc {proc.returncode}): {proc.stderr[-500:]}"
    assert "typed: InvalidGraph" in proc.stdout


_SPLIT_SCRIPT = r'''
from onnx import TensorProto, helper
from runtime import InferenceSession
from runtime.errors import FerryError
from tests.conftest import make_model

model = make_model([helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=1)],
                   [("x", TensorProto.FLOAT, [2, 4])],
                   [("a", TensorProto.FLOAT, None), ("b", TensorProto.FLOAT, None)], opset=18)
try:
    InferenceSession(model.SerializeToString(), providers=["cpu"])
except FerryError as exc:
    print("typed:", type(exc).__name__)
'''

def test_split_num_outputs_mismatch_is_a_typed_error_not_a_crash():
    proc = _run_isolated(_SPLIT_SCRIPT)
    assert proc.returncode == 0, f"the process died (rc {proc.returncode}): {proc.stderr[-500:]}"
    assert "typed: InvalidGraph" in proc.stdout


_GATHERND_SCRIPT = r'''
import numpy as np
from onnx import TensorProto, helper
from runtime import InferenceSession
from runtime.errors import FerryError
from tests.conftest import make_model

model = make_model([helper.make_node("GatherND", ["x", "nd"], ["g"], batch_dims=-3)],
                   [("x", TensorProto.FLOAT, ["N", 4])], [("g", TensorProto.FLOAT, None)],
                   [("nd", np.array([[0, 1], [1, 3]], np.int64))], opset=16)
try:
    InferenceSession(model.SerializeToString(), providers=["cpu"])
except FerryError as exc:
    print("typed:", type(exc).__name__)
'''

def test_gathernd_negative_batch_dims_is_a_typed_error_not_a_crash():
    proc = _run_isolated(_GATHERND_SCRIPT)
    assert proc.returncode == 0, f"the process died (rc {proc.returncode}): {proc.stderr[-500:]}"
    assert "typed: InvalidGraph" in proc.stdout


_SPLIT_HUGE_SCRIPT = r'''
import numpy as np
from onnx import TensorProto, helper
from runtime import InferenceSession
from runtime.errors import FerryError
from tests.conftest import make_model

model = make_model([helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2**62)],
                   [("x", TensorProto.FLOAT, [2, 4])],
                   [("a", TensorProto.FLOAT, None), ("b", TensorProto.FLOAT, None)], opset=18)
try:
    InferenceSession(model.SerializeToString(), providers=["cpu"]).run(
        None, {"x": np.ones((2, 4), np.float32)})
except FerryError as exc:
    print("typed:", type(exc).__name__)
'''


def test_split_with_a_huge_num_outputs_is_a_typed_error():
    try:
        proc = _run_isolated(_SPLIT_HUGE_SCRIPT, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the session did not answer within 30 s")
    assert proc.returncode == 0, f"the process died (rc {proc.returncode}): {proc.stderr[-500:]}"
    assert "typed:" in proc.stdout


# BUG-5: attributes of the wrong type ran with a guessed value, failed later, or crashed the
# optimizer with a raw ValueError; onnxruntime refuses them at load.


def _attr(name, typ, value):
    a = onnx.AttributeProto()
    a.name, a.type = name, typ
    field = {onnx.AttributeProto.INT: "i", onnx.AttributeProto.FLOAT: "f",
             onnx.AttributeProto.STRING: "s"}.get(typ)
    if field:
        setattr(a, field, value)
    elif typ == onnx.AttributeProto.INTS:
        a.ints.extend(value)
    elif typ == onnx.AttributeProto.FLOATS:
        a.floats.extend(value)
    return a


_A = onnx.AttributeProto
_WRONG_ATTRS = [
    ("Gather", "axis", _A.STRING, b"0"), ("Gather", "axis", _A.INTS, [0]),
    ("Gather", "axis", _A.FLOAT, 0.0), ("Concat", "axis", _A.INTS, [0]),
    ("Transpose", "perm", _A.INT, 1), ("Softmax", "axis", _A.FLOAT, 1.0),
    ("LeakyRelu", "alpha", _A.STRING, b"x"), ("LeakyRelu", "alpha", _A.INT, 2),
    ("Flatten", "axis", _A.STRING, b"1"), ("Cast", "to", _A.FLOAT, 1.0),
    ("ReduceSum", "keepdims", _A.FLOATS, [1.0]), ("MaxPool", "kernel_shape", _A.INT, 2),
]


def _wrong_attr_model(op, name, typ, value):
    x = ("x", F, [1, 1, 4, 4]) if op == "MaxPool" else ("x", F, [4, 4])
    ins = {"Gather": ["x", "i"], "Concat": ["x", "x"]}.get(op, ["x"])
    node = helper.make_node(op, ins, ["y"])
    node.attribute.append(_attr(name, typ, value))
    return make_model([node], [x], [("y", F, None)], [("i", np.array([0, 1], np.int64))])


@pytest.mark.parametrize("op,name,typ,value", _WRONG_ATTRS,
                         ids=[f"{o}-{n}-{_A.AttributeType.Name(t)}"
                              for o, n, t, _ in _WRONG_ATTRS])
def test_attribute_of_the_wrong_type_is_refused_at_load(op, name, typ, value):
    from runtime.errors import InvalidGraph

    model = _wrong_attr_model(op, name, typ, value)
    with pytest.raises(InvalidGraph):
        InferenceSession(model.SerializeToString(), providers=["cpu"])


def test_wrong_attribute_type_in_a_shape_chain_does_not_crash_the_optimizer():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i"], ["d"]),
             helper.make_node("Concat", ["d", "m"], ["t"], axis=0),
             helper.make_node("Reshape", ["x", "t"], ["y"])]
    nodes[1].attribute.append(_attr("axis", _A.STRING, b"0"))
    model = make_model(nodes, [("x", F, ["N", 4])], [("y", F, None)],
                       [("i", np.array([0], np.int64)), ("m", np.array([-1], np.int64))])
    with pytest.raises(FerryError):
        InferenceSession(model.SerializeToString(), providers=["cpu"])


# BUG-6: LayerNormalization's axis was not range-checked: -2**31 tried to build a 2**31-entry
# tuple (the OOM killer ended the run); 2 or 5 on rank 2 silently gave zeros.
@pytest.mark.parametrize("axis", [-2**31, 2, 5])
def test_layer_normalization_axis_out_of_range_is_a_typed_error(axis):
    model = make_model([helper.make_node("LayerNormalization", ["x", "g"], ["y"], axis=axis)],
                       [("x", F, [3, 4])], [("y", F, None)], [("g", np.ones(4, np.float32))])
    x = np.ones((3, 4), np.float32)
    with _address_space_headroom(), pytest.raises(FerryError) as info:
        InferenceSession(model.SerializeToString(), providers=["cpu"]).run(None, {"x": x})
    assert not _memory_error_in(info.value), str(info.value)
    assert "axis" in str(info.value)


# BUG-10: RNN ops allocated by hidden_size (48 GiB) before checking it against the weights.
@pytest.mark.parametrize("op,gates", [("GRU", 3), ("LSTM", 4), ("RNN", 1)])
def test_rnn_hidden_size_mismatching_the_weights_is_refused(op, gates):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1, gates * 3, 4)).astype(np.float32)
    r = rng.standard_normal((1, gates * 3, 3)).astype(np.float32)
    model = make_model([helper.make_node(op, ["x", "w", "r"], ["", "h"], hidden_size=2**31 - 1)],
                       [("x", F, [2, 1, 4])], [("h", F, None)], [("w", w), ("r", r)])
    x = np.ones((2, 1, 4), np.float32)
    with _address_space_headroom(), pytest.raises(FerryError) as info:
        InferenceSession(model.SerializeToString(), providers=["cpu"]).run(None, {"x": x})
    assert not _memory_error_in(info.value), str(info.value)
