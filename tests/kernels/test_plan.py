"""ferry_kernels' Kernel.run checks and the Plan loop: value kinds, callbacks, errors, threads."""

from __future__ import annotations

import threading

import ferry_kernels as fk
import numpy as np
import pytest


def copy_kernel(in_shape, out_shape, dtype="float32", constants=None):
    return fk.make_kernel("Copy", {}, [list(in_shape)], [dtype], [list(out_shape)], [dtype],
                          constants or {})


def matmul_kernel(m, k, n, constants=None):
    return fk.make_kernel("MatMul", {}, [[m, k], [k, n]], ["float32"] * 2, [[m, n]], ["float32"],
                          constants or {})


# ---- module-level API ---------------------------------------------------------------------

def test_kernel_names_and_threads():
    names = fk.kernel_names()
    assert {"Copy", "Gemm", "MatMul", "Conv"} <= set(names)
    old = fk.get_num_threads()
    try:
        fk.set_num_threads(3)
        assert fk.get_num_threads() == 3
        fk.set_num_threads(1)
        assert fk.get_num_threads() == 1
    finally:
        fk.set_num_threads(old)


def test_unknown_kernel():
    with pytest.raises(ValueError, match="no kernel"):
        fk.make_kernel("NoSuchOp", {}, [], [], [], [])


def test_copy_any_dtype():
    for dt in ["float32", "float64", "int8", "int64", "uint16", "bool", "float16"]:
        x = (np.arange(12) % 2).astype(dt).reshape(3, 4)
        y = np.empty(12, dt)
        copy_kernel((3, 4), (12,), dt).run([x], [y])
        np.testing.assert_array_equal(y, x.ravel())


def test_copy_bfloat16_and_constant():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.arange(6, dtype=ml_dtypes.bfloat16)
    y = np.empty(6, ml_dtypes.bfloat16)
    copy_kernel((6,), (6,), "bfloat16", {0: x}).run([None], [y])
    np.testing.assert_array_equal(y, x)


# ---- Kernel.run argument checks ------------------------------------------------------------

@pytest.mark.parametrize("bad,match", [
    (lambda x, y: ([x.astype(np.float64)], [y]), "dtype"),
    (lambda x, y: ([x.reshape(4, 3)], [y]), "shape"),
    (lambda x, y: ([np.asfortranarray(x)], [y]), "C-contiguous"),
    (lambda x, y: ([x[:, ::1]], [y[::2]]), "shape"),
    (lambda x, y: ([x], [np.empty(12, np.float32)[::1].reshape(12)[:11]]), "shape"),
    (lambda x, y: ([x.tolist()], [y]), "numpy array"),
    (lambda x, y: ([x], []), "outputs"),
    (lambda x, y: ([None], [y]), "required"),
])
def test_run_rejects_bad_arguments(bad, match):
    x = np.ones((3, 4), np.float32)
    y = np.empty(12, np.float32)
    k = copy_kernel((3, 4), (12,))
    with pytest.raises(ValueError, match=match):
        k.run(*bad(x, y))


def test_run_rejects_readonly_output():
    x = np.ones((3, 4), np.float32)
    y = np.empty(12, np.float32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        copy_kernel((3, 4), (12,)).run([x], [y])


# ---- Plan ---------------------------------------------------------------------------------

def _plan(callback):
    """input x[2,3] -Copy-> arena a -alias-> v[6]; callback(v, const c) -> output y[6]."""
    values = [("input", 0, [2, 3], "float32", None),
              ("arena", 64, [2, 3], "float32", None),
              ("alias", 1, [6], "float32", None),
              ("const", 0, [6], "float32", np.arange(6, dtype=np.float32)),
              ("output", 0, [6], "float32", None)]
    steps = [(copy_kernel((2, 3), (2, 3)), [0], [1]), (callback, [2, 3], [4])]
    return fk.Plan(128, values, steps)


def test_plan_runs_kernels_and_callbacks():
    seen = {}

    def cb(v, c):
        seen["v"] = (v.shape, v.flags.writeable, c.flags.writeable)
        return v * 2 + c

    plan = _plan(cb)
    assert plan.num_steps == 2 and plan.arena_bytes == 128
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.empty(6, np.float32)
    plan.run([x], [y])
    np.testing.assert_array_equal(y, x.ravel() * 2 + np.arange(6))
    # Callbacks see read-only views of the plan's values.
    assert seen["v"] == ((6,), False, False)


def test_plan_kernel_chain_with_constant_weights():
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = rng.standard_normal((16, 4)).astype(np.float32)
    values = [("input", 0, [5, 8], "float32", None),
              ("arena", 0, [5, 16], "float32", None),
              ("output", 0, [5, 4], "float32", None),
              ("const", 0, [16, 4], "float32", w2)]
    steps = [(matmul_kernel(5, 8, 16, {1: w1}), [0, -1], [1]),
             (matmul_kernel(5, 16, 4), [1, 3], [2])]
    plan = fk.Plan(5 * 16 * 4, values, steps)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    y = np.empty((5, 4), np.float32)
    plan.run([x], [y])
    np.testing.assert_allclose(y, (x @ w1) @ w2, rtol=1e-5, atol=1e-5)


def test_plan_alias_offsets_are_slices():
    """Two copies write the halves of one output through aliases at byte offsets (a Concat's
    inputs written in place), and a slice of a slice accumulates the offsets."""
    values = [("input", 0, [3], "float32", None),
              ("input", 1, [2], "float32", None),
              ("output", 0, [6], "float32", None),
              ("alias", 2, [5], "float32", 4),    # y[1:6]
              ("alias", 3, [3], "float32", None),  # y[1:4]
              ("alias", 3, [2], "float32", 12)]   # y[4:6]
    steps = [(copy_kernel((3,), (3,)), [0], [4]), (copy_kernel((2,), (2,)), [1], [5])]
    plan = fk.Plan(0, values, steps)
    y = np.full(6, -1, np.float32)
    plan.run([np.array([1, 2, 3], np.float32), np.array([4, 5], np.float32)], [y])
    np.testing.assert_array_equal(y, [-1, 1, 2, 3, 4, 5])


def test_plan_unread_kernel_output_gets_scratch():
    values = [("input", 0, [4], "float32", None), ("output", 0, [4], "float32", None)]
    steps = [(copy_kernel((4,), (4,)), [0], [-1]), (copy_kernel((4,), (4,)), [0], [1])]
    plan = fk.Plan(0, values, steps)
    y = np.empty(4, np.float32)
    plan.run([np.arange(4, dtype=np.float32)], [y])
    np.testing.assert_array_equal(y, np.arange(4))


def test_plan_callback_exception_propagates():
    def boom(v, c):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        _plan(boom).run([np.zeros((2, 3), np.float32)], [np.empty(6, np.float32)])


@pytest.mark.parametrize("result,exc,match", [
    (lambda v, c: np.zeros(5, np.float32), ValueError, "shape"),
    (lambda v, c: np.zeros(6, np.float64), TypeError, "dtype"),
    (lambda v, c: (v, v), ValueError, "returned 2 values"),
    (lambda v, c: [1.0] * 6, TypeError, "numpy array"),
])
def test_plan_callback_result_checked(result, exc, match):
    with pytest.raises(exc, match=match):
        _plan(result).run([np.zeros((2, 3), np.float32)], [np.empty(6, np.float32)])


def test_plan_callback_noncontiguous_result_copied():
    plan = _plan(lambda v, c: np.arange(12, dtype=np.float32)[::2])
    y = np.empty(6, np.float32)
    plan.run([np.zeros((2, 3), np.float32)], [y])
    np.testing.assert_array_equal(y, np.arange(0, 12, 2))


def test_plan_run_checks_inputs_and_outputs():
    plan = _plan(lambda v, c: v + c)
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        plan.run([np.zeros((3, 2), np.float32)], [np.empty(6, np.float32)])
    with pytest.raises(ValueError, match="dtype"):
        plan.run([x.astype(np.float64)], [np.empty(6, np.float32)])
    with pytest.raises(ValueError, match="inputs"):
        plan.run([], [np.empty(6, np.float32)])
    with pytest.raises(ValueError, match="outputs"):
        plan.run([x], [])


@pytest.mark.parametrize("values,steps,match", [
    ([("input", 0, [4], "float32", None), ("output", 0, [5], "float32", None)],
     "copy4", "kernel writes"),
    ([("input", 0, [4], "float32", None), ("arena", 0, [4], "float32", None)],
     "copy4", "does not fit"),
    ([("input", 0, [4], "float32", None), ("output", 0, [4], "float32", None)],
     "write_input", "plan input"),
    ([("input", 0, [4], "float32", None), ("alias", 7, [4], "float32", None)],
     None, "alias"),
    ([("input", 0, [4], "float32", None), ("output", 0, [4], "float32", None),
      ("alias", 1, [2], "float32", 12)], None, "past its end"),
    ([("input", 0, [4], "float32", None), ("output", 0, [4], "float32", None),
      ("alias", 1, [2], "float32", 2)], None, "not aligned"),
    ([("input", 0, [4], "float32", None), ("output", 0, [4], "float32", None),
      ("alias", 1, [2], "float32", -4)], None, "negative"),
    ([("weird", 0, [4], "float32", None)], None, "unknown kind"),
    ([("input", 0, [4], "float32", None), ("output", 0, [4], "float32", None)],
     "not_callable", "Kernel or a callable"),
])
def test_plan_construction_errors(values, steps, match):
    k = copy_kernel((4,), (4,))
    step_sets = {None: [], "copy4": [(k, [0], [1])], "write_input": [(k, [1], [0])],
                 "not_callable": [(42, [0], [1])]}
    with pytest.raises(ValueError, match=match):
        fk.Plan(8, values, step_sets[steps])


def test_plan_concurrent_runs():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    values = [("input", 0, [32, 64], "float32", None),
              ("arena", 0, [32, 64], "float32", None),
              ("arena", 32 * 64 * 4, [32, 64], "float32", None),
              ("output", 0, [32, 64], "float32", None)]
    steps = [(matmul_kernel(32, 64, 64, {1: w}), [0, -1], [1]),
             (lambda a: np.tanh(a), [1], [2]),
             (matmul_kernel(32, 64, 64, {1: w}), [2, -1], [3])]
    plan = fk.Plan(2 * 32 * 64 * 4, values, steps)
    errors = []

    def worker(seed):
        r = np.random.default_rng(seed)
        try:
            for _ in range(30):
                x = r.standard_normal((32, 64)).astype(np.float32)
                y = np.empty((32, 64), np.float32)
                plan.run([x], [y])
                np.testing.assert_allclose(y, np.tanh(x @ w) @ w, rtol=1e-4, atol=1e-4)
        except Exception as exc:  # noqa: BLE001 - reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
