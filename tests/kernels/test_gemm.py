"""The C++ GEMM (through the "Gemm" and "MatMul" kernels) against numpy in float64, on every
ISA this CPU supports (lower ISAs in a subprocess with FERRY_MAX_ISA) and on 1 and 2 threads."""

from __future__ import annotations

import os
import subprocess

import ferry_kernels as fk
import numpy as np
import pytest

from tests.kernels.op_kernel_cases import run_in_subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (M, N, K): ones, primes, non-multiples of the tiles (4x8, 6x16, 12x32), more than one K block
# (kc <= 512), more than one M block, N of many panels.
SHAPES = [(1, 1, 1), (1, 17, 3), (17, 1, 5), (7, 11, 13), (31, 37, 41), (12, 32, 384),
          (13, 33, 385), (33, 65, 129), (6, 16, 600), (1, 1000, 1031), (1031, 3, 7),
          (250, 97, 520), (61, 1030, 67), (129, 257, 1100)]


def gemm(a, b, c=None, *, trans_a=0, trans_b=0, alpha=1.0, beta=1.0, constants=(),
         activation=None, act_alpha=None, act_beta=None, out=None):
    """Run the Gemm kernel once; returns Y."""
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    ins = [a, b] + ([c] if c is not None else [])
    params = {"transA": trans_a, "transB": trans_b, "alpha": alpha, "beta": beta,
              "activation": activation, "activation_alpha": act_alpha,
              "activation_beta": act_beta}
    k = fk.make_kernel("Gemm", params, [list(x.shape) for x in ins], ["float32"] * len(ins),
                       [[m, n]], ["float32"], {i: ins[i] for i in constants})
    y = np.empty((m, n), np.float32) if out is None else out
    k.run([None if i in constants else x for i, x in enumerate(ins)], [y])
    return y


def reference(a, b, c, trans_a, trans_b, alpha, beta):
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    y = alpha * (a64 @ b64)
    return y if c is None else y + beta * c


def assert_close(got, want, k):
    # float32 accumulation over k terms of unit normals: error grows like sqrt(k) * eps * |y|.
    tol = 1e-5 * max(1.0, np.sqrt(k)) * (1.0 + np.abs(want).max(initial=0.0))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def run_all_cases(threads_list=(1, 2)) -> None:
    """Every GEMM check; used in-process and by the subprocesses that cap the ISA."""
    rng = np.random.default_rng(7)
    old = fk.get_num_threads()
    try:
        for threads in threads_list:
            fk.set_num_threads(threads)
            for m, n, k in SHAPES:
                for trans_a in (0, 1):
                    for trans_b in (0, 1):
                        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
                        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
                        c = rng.standard_normal((m, n)).astype(np.float32)
                        want = reference(a, b, c, trans_a, trans_b, 0.75, -1.25)
                        for constants in ((), (1,)):
                            got = gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, alpha=0.75,
                                       beta=-1.25, constants=constants)
                            assert_close(got, want, k)
                # MatMul: B packed or not, batched with broadcasting.
                a = rng.standard_normal((2, m, k)).astype(np.float32)
                b = rng.standard_normal((1, k, n)).astype(np.float32)
                b2 = rng.standard_normal((2, k, n)).astype(np.float32)
                for bb in (b, b2):
                    for constants in ({}, {1: bb}):
                        kern = fk.make_kernel("MatMul", {}, [list(a.shape), list(bb.shape)],
                                              ["float32"] * 2, [[2, m, n]], ["float32"],
                                              constants)
                        y = np.empty((2, m, n), np.float32)
                        kern.run([a, None if constants else bb], [y])
                        assert_close(y, a.astype(np.float64) @ bb, k)
    finally:
        fk.set_num_threads(old)


def test_gemm_active_isa():
    run_all_cases()


@pytest.mark.parametrize("isa", [i for i in fk.supported_isas() if i != fk.isa()])
def test_gemm_lower_isa(isa):
    run_in_subprocess("tests.kernels.test_gemm", isa)


def test_k_zero_and_empty():
    a = np.zeros((3, 0), np.float32)
    b = np.zeros((0, 4), np.float32)
    c = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(gemm(a, b, c, beta=2.0), 2.0 * c)
    np.testing.assert_array_equal(gemm(a, b), np.zeros((3, 4), np.float32))
    assert gemm(np.zeros((0, 5), np.float32), np.ones((5, 4), np.float32)).shape == (0, 4)


def test_beta_zero_does_not_read_output():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((37, 29)).astype(np.float32)
    b = rng.standard_normal((29, 41)).astype(np.float32)
    out = np.full((37, 41), np.nan, np.float32)
    got = gemm(a, b, out=out)
    assert np.isfinite(got).all()
    # beta == 0 with C given: C is ignored, even where it holds inf.
    c = np.full((37, 41), np.inf, np.float32)
    assert_close(gemm(a, b, c, beta=0.0), a.astype(np.float64) @ b, 29)


@pytest.mark.parametrize("c_shape", [(), (1,), (41,), (1, 41), (37, 1), (37, 41), (1, 1)])
@pytest.mark.parametrize("constant_c", [False, True])
def test_c_broadcast(c_shape, constant_c):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((37, 29)).astype(np.float32)
    b = rng.standard_normal((29, 41)).astype(np.float32)
    c = rng.standard_normal(c_shape).astype(np.float32)
    got = gemm(a, b, c, alpha=1.5, beta=0.25, constants=(2,) if constant_c else ())
    assert_close(got, 1.5 * (a.astype(np.float64) @ b) + 0.25 * c, 29)


@pytest.mark.parametrize("act,alpha,beta,fn", [
    ("relu", None, None, lambda y: np.maximum(y, 0)),
    ("clip", -0.5, 0.75, lambda y: np.clip(y, -0.5, 0.75)),
    ("leaky_relu", 0.1, None, lambda y: np.where(y < 0, 0.1 * y, y)),
    ("sigmoid", None, None, lambda y: 1 / (1 + np.exp(-y))),
    ("tanh", None, None, np.tanh),
    ("hard_sigmoid", 0.2, 0.5, lambda y: np.clip(0.2 * y + 0.5, 0, 1)),
])
def test_fused_activation(act, alpha, beta, fn):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((45, 70)).astype(np.float32)
    b = rng.standard_normal((70, 50)).astype(np.float32)
    c = rng.standard_normal((50,)).astype(np.float32)
    got = gemm(a, b, c, activation=act, act_alpha=alpha, act_beta=beta, constants=(1,))
    assert_close(got, fn(a.astype(np.float64) @ b + c), 70)


def test_relu_keeps_nan():
    a = np.array([[np.nan, 1.0]], np.float32)
    b = np.ones((2, 3), np.float32)
    assert np.isnan(gemm(a, b, activation="relu")).all()


def test_unknown_activation_rejected():
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="activation"):
        gemm(a, a, activation="swish")


def test_kernel_argument_errors():
    with pytest.raises(ValueError, match="inner"):
        fk.make_kernel("Gemm", {}, [[2, 3], [4, 5]], ["float32"] * 2, [[2, 5]], ["float32"])
    with pytest.raises(ValueError, match="float32"):
        fk.make_kernel("Gemm", {}, [[2, 3], [3, 5]], ["float64"] * 2, [[2, 5]], ["float64"])
    with pytest.raises(ValueError, match="output shape"):
        fk.make_kernel("MatMul", {}, [[2, 3], [3, 5]], ["float32"] * 2, [[5, 2]], ["float32"])
    with pytest.raises(ValueError, match="broadcast"):
        fk.make_kernel("MatMul", {}, [[2, 2, 3], [3, 3, 5]], ["float32"] * 2, [[3, 2, 5]],
                       ["float32"])


def test_avx512_microkernel_emulated(tmp_path):
    """The AVX-512 micro-kernel's logic on any CPU: compiled against an emulated immintrin.h."""
    import shutil

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the emulation harness")
    here = os.path.join(ROOT, "tests", "kernels", "emulated_avx512")
    gemm_src = os.path.join(ROOT, "kernels_cpp", "src", "gemm")
    exe = str(tmp_path / "harness")
    build = subprocess.run(
        [cxx, "-O1", "-std=c++17", "-D__AVX512F__", f"-I{here}", f"-I{gemm_src}", "-o", exe,
         os.path.join(here, "harness.cc"), os.path.join(gemm_src, "f32_gemm__avx512_12x32.cpp"),
         os.path.join(gemm_src, "f32_gemm__scalar.cpp")], capture_output=True, text=True,
        timeout=300, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "0 bad elements" in proc.stdout


def test_constant_the_kernel_does_not_copy_is_still_read():
    """A constant given at make time may be passed as None at run time even where the kernel
    keeps no copy of it (MatMul pre-packs only B): the binding hands the kernel the kept array
    (a None A used to reach the kernel as a null pointer)."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal((7, 4)).astype(np.float32)
    y = np.empty((5, 4), np.float32)
    k = fk.make_kernel("MatMul", {}, [a.shape, b.shape], ["float32"] * 2, [y.shape], ["float32"],
                       {0: a})
    k.run([None, b], [y])
    np.testing.assert_allclose(y, a @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="None but required"):
        k.run([a, None], [y])


@pytest.mark.parametrize("n0", [1, 5, 8, 9, 15])
def test_column_result_does_not_depend_on_panel_boundaries(n0):
    """A column computed in a narrow last panel (<= 8 real columns: its own loop) equals the
    same column computed inside a full panel, bit for bit: convolutions split N by the thread
    count, and parallel runs must equal sequential ones exactly."""
    rng = np.random.default_rng(3)
    m, k = 13, 301
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, 48)).astype(np.float32)
    for constants in ((), (1,)):
        whole = gemm(a, b, constants=constants)
        # Columns [32, 32 + n0) are the last panel here, with n0 real columns.
        part = gemm(a, np.ascontiguousarray(b[:, :32 + n0]), constants=constants)
        np.testing.assert_array_equal(part, whole[:, :32 + n0])
        # And [16, 16 + n0) on their own: a first and last panel.
        alone = gemm(a, np.ascontiguousarray(b[:, 16:16 + n0]), constants=constants)
        np.testing.assert_array_equal(alone, whole[:, 16:16 + n0])


@pytest.mark.parametrize("m0", [2, 3, 4, 5, 8, 10])
def test_row_result_does_not_depend_on_tile_boundaries(m0):
    """A row computed in a last row panel of 2-5 real rows (their own loop) equals the same row
    computed inside a full tile, bit for bit. (A single-row panel takes the matrix-vector loop,
    which splits k over four accumulators: not covered.)"""
    rng = np.random.default_rng(4)
    k, n = 301, 40
    a = rng.standard_normal((24, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    for constants in ((), (1,)):
        whole = gemm(a, b, constants=constants)
        # Rows [12, 12 + m0): a last panel of m0 rows when 12 + m0 is not a multiple of the
        # tile height, inside full tiles in `whole`.
        part = gemm(np.ascontiguousarray(a[:12 + m0]), b, constants=constants)
        np.testing.assert_array_equal(part, whole[:12 + m0])
        alone = gemm(np.ascontiguousarray(a[12:12 + m0]), b, constants=constants)
        np.testing.assert_array_equal(alone, whole[12:12 + m0])


@pytest.mark.parametrize("m,n,k", [(128, 768, 770), (37, 3000, 300), (3000, 37, 300),
                                   (130, 130, 1031)])
def test_threaded_equals_sequential(m, n, k):
    """Two threads split the larger dimension into several items claimed dynamically, with the
    operand all items read (A for an N split, B for an M split) packed once, together: the
    result equals one thread's bit for bit, for raw and constant B and a transposed A."""
    rng = np.random.default_rng(5)
    old = fk.get_num_threads()
    try:
        for trans_a in (0, 1):
            a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            for constants in ((), (1,)):
                got = {}
                for threads in (1, 2):
                    fk.set_num_threads(threads)
                    got[threads] = gemm(a, b, trans_a=trans_a, constants=constants)
                np.testing.assert_array_equal(got[2], got[1])
                want = reference(a, b, None, trans_a, 0, 1.0, 0.0)
                assert_close(got[1], want, k)
    finally:
        fk.set_num_threads(old)
