"""The C++ NchwcConv kernel (direct convolution into the channels-blocked-by-8 layout) against
the numpy Conv reference converted to NCHWc, with bias, a residual (separate and in place) and
fused activations, on every ISA path this CPU has (each cap in a subprocess: the ISA is read
once at import), at 1 and 2 threads."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.kernels.op_kernel_cases import run_script_capped

ferry_kernels = pytest.importorskip("ferry_kernels")

SCRIPT = textwrap.dedent("""
    import numpy as np, ferry_kernels as fk
    from providers.cpu.ops import conv as conv_ops
    from providers.cpu.ops.fused import apply_activation
    fk.set_num_threads(int({threads}))
    rng = np.random.default_rng(0)

    def to_nchwc(a):
        n, c, h, w = a.shape
        return np.ascontiguousarray(a.reshape(n, c // 8, 8, h, w).transpose(0, 1, 3, 4, 2))

    def check(n, c, h, w, m, k, s, p, d, layout="nchwc", bias=True, z=None, act="",
              act_params=(), tag=""):
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        pads = [p] * 4 if isinstance(p, int) else list(p)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((m, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32) if bias else None
        attrs = dict(group=1, strides=[sh, sw], dilations=[d, d], pads=pads, kernel_shape=[kh, kw])
        ref = conv_ops.conv(x, wt, b, **attrs)
        zz = rng.standard_normal(ref.shape).astype(np.float32) if z else None
        if zz is not None:
            ref = ref + zz
        ref = to_nchwc(apply_activation(ref, act, list(act_params)))
        params = dict(attrs, activation=act or "none", input_layout=layout)
        if act == "clip":
            params.update(activation_alpha=act_params[0], activation_beta=act_params[1])
        if act == "leaky_relu":
            params.update(activation_alpha=act_params[0])
        xin = to_nchwc(x) if layout == "nchwc" else x
        ins = [xin.shape, wt.shape, (m,)] + ([ref.shape] if z else [])
        dts = ["float32", "float32", "float32" if bias else None] + (["float32"] if z else [])
        consts = {{1: wt, 2: b}} if bias else {{1: wt}}
        kern = fk.make_kernel("NchwcConv", params, ins, dts, [ref.shape], ["float32"], consts)
        if z == "inplace":
            y = to_nchwc(zz)
            kern.run([xin, None, None, y], [y])
        else:
            y = np.full(ref.shape, np.nan, np.float32)
            kern.run([xin, None, None] + ([to_nchwc(zz)] if z else []), [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=f"{{(n, c, h, w, m, k, s, p, d, layout, bias, z, act)}} {{tag}}")
        return kern

    acts = [("", ()), ("relu", ()), ("clip", (-0.5, 0.5)), ("silu", ()), ("leaky_relu", (0.1,))]
    cases = [
        # (N, C, H, W, M, k, stride, pad, dil, layout)
        (1, 16, 9, 7, 16, 1, 1, 0, 1, "nchwc"),     # pointwise, 63 pixels (not a multiple of 6)
        (2, 24, 5, 5, 8, 1, 1, 0, 1, "nchwc"),      # pointwise, M = 8 (one block), two images
        (1, 16, 7, 7, 40, 1, 1, 0, 1, "nchwc"),     # pointwise, 5 blocks: a pair and a triple
        (1, 16, 13, 17, 24, 1, 1, 0, 1, "nchwc"),   # pointwise, 3 blocks
        (1, 520, 3, 5, 16, 1, 1, 0, 1, "nchwc"),    # pointwise, 65 input blocks: 3 chunks
        (1, 64, 1, 1, 16, 1, 1, 0, 1, "nchwc"),     # 1x1 map
        (1, 16, 56, 57, 16, 1, 1, 0, 1, "nchwc"),   # pointwise, a larger plane
        (2, 16, 13, 17, 32, 3, 1, 1, 1, "nchwc"),   # 3x3 pad 1
        (1, 64, 7, 7, 24, 3, 1, 1, 1, "nchwc"),     # 3x3 on 7x7, 8 input blocks: 3 chunks
        (1, 16, 15, 14, 16, 3, 2, 1, 1, "nchwc"),   # 3x3 stride 2
        (1, 8, 2, 3, 16, 3, 1, 1, 1, "nchwc"),      # 2x3 map: edges only
        (1, 8, 1, 1, 8, 3, 1, 1, 1, "nchwc"),       # 1x1 map, 3x3 kernel
        (1, 16, 11, 12, 24, 5, 1, 2, 1, "nchwc"),   # 5x5
        (1, 8, 3, 4, 8, 5, 1, 2, 1, "nchwc"),       # kernel larger than the input
        (1, 8, 10, 13, 16, (1, 3), 1, (0, 2, 1, 0), 1, "nchwc"),  # 1x3, asymmetric pads
        (1, 16, 14, 15, 16, 3, 1, 2, 2, "nchwc"),   # dilation 2
        (2, 16, 14, 13, 24, 1, 2, 0, 1, "nchwc"),   # 1x1 stride 2 (input gathered, pointwise)
        (1, 520, 9, 11, 16, 1, 2, 0, 1, "nchwc"),   # 1x1 stride 2, 65 input blocks: 3 chunks
        (1, 16, 10, 11, 24, 1, 3, 0, 1, "nchwc"),   # 1x1 stride 3, odd sizes
        (1, 16, 10, 11, 16, 1, 2, 1, 1, "nchwc"),   # 1x1 stride 2 padded: the direct path
        (1, 8, 17, 16, 16, 3, 3, 1, 1, "nchwc"),    # stride 3 (runtime column stride)
        (1, 3, 30, 29, 32, 7, 2, 3, 1, "nchw"),     # 7x7/2 pad 3 on a 3-channel NCHW image
        (2, 3, 23, 20, 16, 3, 2, 1, 1, "nchw"),     # 3x3/2 NCHW input
        (1, 5, 9, 11, 8, 1, 1, 0, 1, "nchw"),       # NCHW pointwise, odd C
        (1, 8, 56, 56, 16, 3, 1, 1, 1, "nchwc"),    # 56x56
        # Outputs wider than 16 take row tiles (narrower ones gathered tiles): the same forms
        (1, 16, 40, 41, 24, 3, 2, 1, 1, "nchwc"),   # stride 2, 21 wide
        (1, 8, 30, 38, 16, 3, 1, 2, 2, "nchwc"),    # dilation 2
        (1, 8, 9, 40, 16, (1, 3), 1, (0, 2, 1, 0), 1, "nchwc"),  # 1x3, asymmetric pads
        (1, 8, 12, 24, 8, 5, 1, 2, 1, "nchwc"),     # 5x5, one output block
        (1, 8, 20, 60, 16, 3, 3, 1, 1, "nchwc"),    # stride 3
    ]
    for i, case in enumerate(cases):
        n, c, h, w, m, k, s, p, d, layout = case
        act, ap = acts[i % len(acts)]
        for bias, z in [(True, None), (False, "sep"), (True, "inplace")]:
            check(n, c, h, w, m, k, s, p, d, layout, bias, z, act, ap)
    for act, ap in acts:  # every activation on a two-chunk 3x3 with the residual in place
        check(1, 96, 9, 10, 24, 3, 1, 1, 1, "nchwc", True, "inplace", act, ap)
        check(1, 16, 6, 7, 16, 3, 2, 1, 1, "nchwc", True, "sep", act, ap)
    # Empty output (kernel larger than the padded input) and N = 0: nothing to compute.
    w5 = np.zeros((8, 8, 5, 5), np.float32)
    kern = fk.make_kernel("NchwcConv", dict(group=1, strides=[1, 1], dilations=[1, 1], pads=[0] * 4),
                          [(1, 1, 2, 2, 8), w5.shape], ["float32"] * 2, [(1, 1, 0, 0, 8)],
                          ["float32"], {{1: w5}})
    kern.run([np.zeros((1, 1, 2, 2, 8), np.float32), None], [np.empty((1, 1, 0, 0, 8), np.float32)])
    check(0, 8, 5, 5, 8, 3, 1, 1, 1)
    # Bias given at run time.
    x = to_nchwc(rng.standard_normal((1, 16, 9, 9)).astype(np.float32))
    wt = (rng.standard_normal((16, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    attrs = dict(group=1, strides=[1, 1], dilations=[1, 1], pads=[1] * 4, kernel_shape=[3, 3])
    kern = fk.make_kernel("NchwcConv", attrs, [x.shape, wt.shape, b.shape], ["float32"] * 3,
                          [(1, 2, 9, 9, 8)], ["float32"], {{1: wt}})
    y = np.empty((1, 2, 9, 9, 8), np.float32)
    kern.run([x, None, b], [y])
    ref = to_nchwc(conv_ops.conv(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3)).reshape(1, 16, 9, 9),
                                 wt, b, **attrs))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg="runtime bias")
    print("ok", fk.isa())
""")


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("threads", [1, 2])
def test_nchwc_conv_matches_numpy(cap, threads):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(SCRIPT.format(threads=threads), cap, timeout=300)
    assert out.split() == ["ok", cap]


def _make(params, x_shape, w, y_shape, consts=True, extra_ins=()):
    ins = [x_shape, w.shape] + [s for s, _ in extra_ins]
    dts = ["float32", "float32"] + [d for _, d in extra_ins]
    return ferry_kernels.make_kernel("NchwcConv", params, ins, dts, [y_shape], ["float32"],
                                     {1: w} if consts else None)


@pytest.mark.parametrize("c, hw, m", [(128, 28, 40), (64, 14, 24)])  # row tiles; gathered tiles
def test_nchwc_conv_threads_bit_identical(c, hw, m):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, c // 8, hw, hw, 8)).astype(np.float32)
    w = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    z = rng.standard_normal((1, m // 8, hw, hw, 8)).astype(np.float32)
    params = dict(group=1, strides=[1, 1], dilations=[1, 1], pads=[1] * 4, activation="silu")
    kern = _make(params, x.shape, w, z.shape, extra_ins=[((m,), None), (z.shape, "float32")])
    outs = []
    try:
        for t in (1, 2):
            ferry_kernels.set_num_threads(t)
            y = np.empty(z.shape, np.float32)
            kern.run([x, None, None, z], [y])
            outs.append(y)
    finally:
        ferry_kernels.set_num_threads(1)
    assert np.array_equal(outs[0], outs[1])


def test_nchwc_conv_bad_arguments():
    w = np.zeros((12, 16, 3, 3), np.float32)
    base = dict(group=1, strides=[1, 1], dilations=[1, 1], pads=[1] * 4)
    with pytest.raises(ValueError, match="multiple of 8"):  # M % 8 != 0
        _make(base, (1, 2, 5, 5, 8), w, (1, 2, 5, 5, 8))
    w = np.zeros((16, 16, 3, 3), np.float32)
    with pytest.raises(ValueError, match="constant"):  # W not constant
        _make(base, (1, 2, 5, 5, 8), w, (1, 2, 5, 5, 8), consts=False)
    with pytest.raises(ValueError, match="output"):  # wrong output shape
        _make(base, (1, 2, 5, 5, 8), w, (1, 2, 4, 4, 8))
    with pytest.raises(ValueError, match="group"):
        _make(dict(base, group=2), (1, 2, 5, 5, 8), w, (1, 2, 5, 5, 8))
    with pytest.raises(ValueError, match="input_layout"):
        _make(dict(base, input_layout="nhwc"), (1, 2, 5, 5, 8), w, (1, 2, 5, 5, 8))
    w12 = np.zeros((16, 12, 3, 3), np.float32)  # C % 8 != 0 cannot be NCHWc
    with pytest.raises(ValueError):
        _make(base, (1, 12, 5, 5), w12, (1, 2, 5, 5, 8))
    with pytest.raises(ValueError, match="input channels"):
        _make(base, (1, 1, 5, 5, 8), w, (1, 2, 5, 5, 8))
