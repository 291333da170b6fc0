"""The C++ Conv kernel (general im2col+GEMM, pointwise GEMM, depthwise plane loops) against the
numpy reference, with a residual input and fused activations, on every ISA path this CPU
has (each cap checked in a subprocess: the ISA is read once at import)."""

from __future__ import annotations

import textwrap

import pytest

from tests.kernels.op_kernel_cases import run_script_capped

ferry_kernels = pytest.importorskip("ferry_kernels")

SCRIPT = textwrap.dedent("""
    import itertools, numpy as np, ferry_kernels as fk
    from providers.cpu.ops import conv as conv_ops
    from providers.cpu.ops.fused import apply_activation
    fk.set_num_threads(int({threads}))
    rng = np.random.default_rng(0)
    cases = [
        # (N, C, H, W, M, group, k, stride, pad, dil)
        (1, 8, 9, 7, 8, 8, 3, 1, 1, 1),      # depthwise
        (2, 16, 15, 13, 16, 16, 3, 2, 1, 1), # depthwise, stride 2
        (1, 5, 6, 6, 5, 5, 5, 1, 2, 2),      # depthwise, 5x5 dilated
        (1, 24, 7, 7, 24, 24, 3, 1, 1, 1),   # depthwise, small plane
        (1, 4, 40, 37, 4, 4, 3, 1, 1, 1),    # depthwise, wide rows: register-blocked
        (1, 3, 41, 39, 3, 3, 3, 2, 1, 1),    # depthwise, wide rows, stride 2
        (1, 2, 30, 45, 2, 2, 5, 2, 2, 1),    # depthwise 5x5, stride 2
        (1, 2, 33, 40, 2, 2, 3, 1, 2, 2),    # depthwise, dilated, wide rows
        (1, 2, 20, 70, 2, 2, 7, 1, 0, 1),    # depthwise 7x7: more taps than registers
        (1, 16, 40, 40, 48, 1, 1, 1, 0, 1),  # pointwise, tall output
        (1, 3, 17, 19, 10, 1, 3, 2, 1, 1),   # general
        (2, 6, 8, 8, 9, 3, 3, 1, 1, 1),      # grouped
    ]
    acts = [("", []), ("relu", []), ("clip", [-0.5, 0.5]), ("silu", []), ("gelu", []),
            ("leaky_relu", [0.1])]
    for (n, c, h, w, m, g, k, s, p, d), (act, params), use_z in itertools.product(
            cases, acts, [False, True]):
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((m, c // g, k, k)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        attrs = dict(group=g, strides=[s, s], dilations=[d, d], pads=[p] * 4, kernel_shape=[k, k])
        ref = conv_ops.conv(x, wt, b, **attrs)
        z = rng.standard_normal(ref.shape).astype(np.float32) if use_z else None
        if z is not None:
            ref = ref + z
        ref = apply_activation(ref, act, params)
        params_k = dict(attrs, activation=act or "none")
        if act == "clip":
            params_k.update(activation_alpha=params[0], activation_beta=params[1])
        if act == "leaky_relu":
            params_k.update(activation_alpha=params[0])
        ins = [x.shape, wt.shape, b.shape] + ([z.shape] if z is not None else [])
        kern = fk.make_kernel("Conv", params_k, ins, ["float32"] * len(ins), [ref.shape],
                              ["float32"], {{1: wt, 2: b}})
        y = np.empty(ref.shape, np.float32)
        kern.run([x, None, None] + ([z] if z is not None else []), [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{{(n, c, h, w, m, g, k, s, p, d)}} {{act}} z={{use_z}}")
    print("ok", fk.isa())
""")


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_kernel_matches_numpy(cap, threads):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(SCRIPT.format(threads=threads), cap, timeout=300)
    assert out.split() == ["ok", cap]
