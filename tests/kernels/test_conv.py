"""The C++ Conv kernel (general im2col+GEMM, shifted rows, Winograd F(2x2, 3x3), pointwise GEMM,
depthwise plane loops) against the
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
        (1, 24, 7, 7, 24, 24, 3, 1, 1, 1),   # depthwise, small plane (fixed-size 7x7 kernel)
        (1, 12, 14, 14, 12, 12, 3, 1, 1, 1), # depthwise 14x14 (fixed size)
        (2, 9, 28, 28, 9, 9, 3, 1, 1, 1),    # depthwise 28x28 (fixed size), two images
        (1, 16, 7, 7, 16, 16, 3, 1, 1, 2),   # depthwise 7x7, dilated: the 8-channel path
        (1, 16, 14, 14, 16, 16, 5, 2, 2, 1), # 8-channel path, rows of 14: 8x8 transposes + tail
        (1, 24, 13, 13, 24, 24, 3, 2, 1, 1), # 8-channel path, 13 -> 7, three blocks
        (1, 12, 30, 30, 12, 12, 3, 2, 1, 1), # stride 2, 15 wide: one 8-channel block, 4 phased
        (1, 9, 28, 28, 9, 9, 5, 2, 2, 1),    # 5x5 stride 2, 14 wide: a block and one phased
        (1, 4, 40, 37, 4, 4, 3, 1, 1, 1),    # depthwise, wide rows: register-blocked
        (1, 3, 41, 39, 3, 3, 3, 2, 1, 1),    # depthwise, wide rows, stride 2
        (1, 2, 30, 45, 2, 2, 5, 2, 2, 1),    # depthwise 5x5, stride 2
        (1, 2, 33, 40, 2, 2, 3, 1, 2, 2),    # depthwise, dilated, wide rows
        (1, 2, 20, 70, 2, 2, 7, 1, 0, 1),    # depthwise 7x7: more taps than registers
        (1, 16, 40, 40, 48, 1, 1, 1, 0, 1),  # pointwise, tall output
        (1, 600, 7, 7, 13, 1, 1, 1, 0, 1),   # pointwise, two K blocks: the residual enters once
        (1, 3, 17, 19, 10, 1, 3, 2, 1, 1),   # general (stride 2: im2col)
        (2, 3, 17, 19, 16, 1, 3, 2, 1, 1),   # few channels (C <= 4, M % 8 == 0): 16-channel tiles
        (1, 3, 23, 30, 40, 1, 3, 2, 1, 1),   # few channels: 32 + 8 output channels
        (1, 1, 12, 13, 8, 1, 3, 1, 1, 2),    # few channels: one input channel, dilated
        (1, 4, 15, 14, 24, 1, (3, 2), 2, (1, 0, 0, 1), 1),  # few channels: 3x2, asymmetric pads
        (2, 6, 8, 8, 9, 3, 3, 1, 1, 1),      # grouped (stride 1: shifted rows)
        (1, 16, 14, 11, 24, 1, 3, 1, 1, 1),  # stride 1: shifted rows of a padded input
        (1, 8, 12, 9, 10, 1, 3, 1, 2, 2),    # stride 1, dilated
        (1, 7, 9, 13, 5, 1, 5, 1, 0, 1),     # stride 1, 5x5, no padding
        (1, 8, 64, 66, 64, 1, 3, 1, 1, 1),   # stride 1, several row chunks
        (1, 6, 10, 12, 8, 1, (1, 3), 1, (0, 1, 2, 0), 1),  # 1x3, asymmetric pads
        (1, 3, 30, 29, 16, 1, 7, 2, 3, 1),   # stride 2, 7x7: four phase planes
        (1, 5, 17, 16, 6, 1, 3, 3, 1, 1),    # stride 3: nine phases
        (1, 4, 19, 21, 7, 1, 3, 2, 2, 2),    # stride 2, dilation 2: one phase read
        (2, 8, 14, 14, 12, 1, 1, 2, 0, 1),   # 1x1 stride 2: one phase
        (1, 6, 13, 11, 9, 1, (3, 2), 2, (1, 0, 0, 1), 1),  # stride 2, asymmetric pads
        (1, 6, 9, 9, 12, 2, 3, 2, 1, 1),     # grouped, stride 2
        (1, 8, 7, 7, 16, 1, 7, 1, 0, 1),     # kernel as wide as the input: im2col, not shifted
        (1, 32, 20, 23, 32, 32, 3, 1, 1, 1), # depthwise, flat padded plane (rows of 23)
        (1, 5, 12, 12, 5, 5, 5, 1, 2, 1),    # depthwise 5x5 unrolled
        (1, 4, 30, 70, 4, 4, 3, 2, 1, 1),    # depthwise stride 2, 35 wide: 4 vectors + tail
        (1, 5, 28, 28, 5, 5, 3, 2, 1, 1),    # depthwise stride 2 on four phase planes
        (1, 3, 33, 40, 3, 3, 5, 2, (2, 1, 1, 2), 1),  # 5x5 stride 2 phases, asymmetric pads
        (1, 4, 35, 36, 4, 4, 3, 2, 0, 1),    # 3x3 stride 2 phases, no padding, odd rows
    ]
    acts = [("", []), ("relu", []), ("clip", [-0.5, 0.5]), ("silu", []), ("gelu", []),
            ("leaky_relu", [0.1])]
    for (n, c, h, w, m, g, k, s, p, d), (act, params), use_z in itertools.product(
            cases, acts, [False, True]):
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        kh, kw = (k, k) if isinstance(k, int) else k
        wt = rng.standard_normal((m, c // g, kh, kw)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        pads = [p] * 4 if isinstance(p, int) else list(p)
        attrs = dict(group=g, strides=[s, s], dilations=[d, d], pads=pads, kernel_shape=[kh, kw])
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
    # Depthwise with different strides per axis: (2, 1) must not take the flat stride-1 loop.
    for sh, sw in [(2, 1), (1, 2), (3, 2)]:
        x = rng.standard_normal((1, 4, 21, 40)).astype(np.float32)
        wt = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
        attrs = dict(group=4, strides=[sh, sw], dilations=[1, 1], pads=[1] * 4,
                     kernel_shape=[3, 3])
        ref = conv_ops.conv(x, wt, None, **attrs)
        kern = fk.make_kernel("Conv", attrs, [x.shape, wt.shape], ["float32"] * 2, [ref.shape],
                              ["float32"], {{1: wt}})
        y = np.empty(ref.shape, np.float32)
        kern.run([x, None], [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg=f"strides {{(sh, sw)}}")
    # Weights given at run time (not constant): the im2col path.
    for (n, c, h, w, m, g, k, s, p, d) in [(1, 3, 17, 19, 10, 1, 3, 2, 1, 1),
                                           (2, 6, 8, 8, 9, 3, 3, 1, 1, 1)]:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((m, c // g, k, k)).astype(np.float32)
        attrs = dict(group=g, strides=[s, s], dilations=[d, d], pads=[p] * 4, kernel_shape=[k, k])
        ref = conv_ops.conv(x, wt, None, **attrs)
        kern = fk.make_kernel("Conv", attrs, [x.shape, wt.shape], ["float32"] * 2, [ref.shape],
                              ["float32"])
        y = np.empty(ref.shape, np.float32)
        kern.run([x, wt], [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg="runtime weights")
    # The residual given in the output's own buffer (Y = conv(X) + Y): the depthwise paths
    # must read each z before overwriting it.
    for (h, w, s) in [(20, 23, 1), (30, 70, 2), (7, 7, 1), (9, 14, 2)]:
        c = 8
        x = rng.standard_normal((1, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        attrs = dict(group=c, strides=[s, s], dilations=[1, 1], pads=[1] * 4, kernel_shape=[3, 3])
        ref = conv_ops.conv(x, wt, b, **attrs)
        y = rng.standard_normal(ref.shape).astype(np.float32)
        ref = ref + y
        kern = fk.make_kernel("Conv", attrs, [x.shape, wt.shape, b.shape, y.shape], ["float32"] * 4,
                              [ref.shape], ["float32"], {{1: wt, 2: b}})
        kern.run([x, None, None, y], [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg=f"in place {{(h, w, s)}}")
    # The same for convs with one group (Winograd, shifted rows, im2col, pointwise, few channels).
    for (c, m, h, k, s) in [(64, 32, 14, 3, 1), (8, 8, 11, 3, 1), (4, 6, 9, 3, 2), (5, 7, 6, 1, 1),
                            (3, 8, 10, 3, 2)]:
        x = rng.standard_normal((1, c, h, h)).astype(np.float32)
        wt = rng.standard_normal((m, c, k, k)).astype(np.float32)
        p = k // 2
        attrs = dict(group=1, strides=[s, s], dilations=[1, 1], pads=[p] * 4, kernel_shape=[k, k])
        ref = conv_ops.conv(x, wt, None, **attrs)
        y = rng.standard_normal(ref.shape).astype(np.float32)
        ref = ref + y
        kern = fk.make_kernel("Conv", attrs, [x.shape, wt.shape, (m,), y.shape], ["float32",
                              "float32", None, "float32"], [ref.shape], ["float32"], {{1: wt}})
        kern.run([x, None, None, y], [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4,
                                   err_msg=f"in place, one group {{(c, m, h, k, s)}}")
    # Winograd F(2x2, 3x3) and F(4x4, 3x3) (3x3, stride 1, dilation 1, one group): forced on
    # for every size (FERRY_CONV_WINOGRAD=2 / 4, read when a kernel is made), then the default
    # choice. Small maps on 2 threads run phase by phase, larger ones in bands of tile rows.
    import os
    for tile, (n, c, h, w, m, p), (act, params), use_z in itertools.product(["2", "4"],
            [(1, 8, 14, 14, 8, (1, 1, 1, 1)), (2, 5, 9, 11, 7, (1, 1, 1, 1)),
             (1, 9, 17, 16, 13, (0, 0, 0, 0)), (1, 6, 15, 12, 10, (2, 0, 1, 2)),
             (1, 4, 1, 1, 3, (1, 1, 1, 1)), (1, 3, 2, 5, 4, (0, 2, 0, 3)),
             (1, 16, 40, 37, 24, (1, 1, 1, 1)), (1, 12, 7, 7, 20, (1, 1, 1, 1))],
            [("", []), ("relu", []), ("silu", [])], [False, True]):
        os.environ["FERRY_CONV_WINOGRAD"] = tile  # the output tile, 2x2 or 4x4
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((m, c, 3, 3)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        attrs = dict(group=1, strides=[1, 1], dilations=[1, 1], pads=list(p), kernel_shape=[3, 3])
        ref = conv_ops.conv(x, wt, b, **attrs)
        z = rng.standard_normal(ref.shape).astype(np.float32) if use_z else None
        ref = apply_activation(ref + z if use_z else ref, act, params)
        ins = [x.shape, wt.shape, b.shape] + ([z.shape] if use_z else [])
        kern = fk.make_kernel("Conv", dict(attrs, activation=act or "none"), ins,
                              ["float32"] * len(ins), [ref.shape], ["float32"], {{1: wt, 2: b}})
        y = np.empty(ref.shape, np.float32)
        kern.run([x, None, None] + ([z] if use_z else []), [y])
        # F(4x4)'s transforms (coefficients up to 8) round ~10x more: within 3e-5 of the
        # output's scale (~1e-4 here, where unnormalized weights make outputs ~10).
        atol = 1e-4 if tile == "2" or ref.size == 0 else max(1e-4, 3e-5 * float(np.abs(ref).max()))
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=atol,
                                   err_msg=f"winograd F({{tile}}) {{(n, c, h, w, m, p)}} {{act}} z={{use_z}}")
    del os.environ["FERRY_CONV_WINOGRAD"]
    for (c, m, h) in [(64, 64, 28), (128, 96, 14), (256, 256, 7), (96, 64, 27)]:  # by default
        x = rng.standard_normal((1, c, h, h)).astype(np.float32)
        wt = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        attrs = dict(group=1, strides=[1, 1], dilations=[1, 1], pads=[1] * 4, kernel_shape=[3, 3])
        ref = conv_ops.conv(x, wt, None, **attrs)
        kern = fk.make_kernel("Conv", attrs, [x.shape, wt.shape], ["float32"] * 2, [ref.shape],
                              ["float32"], {{1: wt}})
        y = np.empty(ref.shape, np.float32)
        kern.run([x, None], [y])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg=f"default {{(c, m, h)}}")
    # Winograd on NCHWc values (layout "nchwc"): F(4x4) and F(2x2), whole images and bands,
    # odd maps, the residual separate and in place.
    def blocked(v):
        n_, c_, h_, w_ = v.shape
        return np.ascontiguousarray(v.reshape(n_, c_ // 8, 8, h_, w_).transpose(0, 1, 3, 4, 2))
    for (n, c, h, w, m, p), (act, params), z_mode in itertools.product(
            [(1, 64, 28, 28, 64, 1), (2, 64, 13, 11, 32, 1), (1, 72, 30, 25, 40, (0, 1, 2, 0)),
             (1, 64, 7, 7, 128, 1)],
            [("", []), ("relu", []), ("silu", [])], ["none", "separate", "in_place"]):
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((m, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        pads = [p] * 4 if isinstance(p, int) else list(p)
        attrs = dict(group=1, strides=[1, 1], dilations=[1, 1], pads=pads, kernel_shape=[3, 3])
        ref = conv_ops.conv(x, wt, b, **attrs)
        z = rng.standard_normal(ref.shape).astype(np.float32) if z_mode != "none" else None
        ref = apply_activation(ref + z if z is not None else ref, act, params)
        yshape = blocked(ref).shape
        ins = [blocked(x).shape, wt.shape, b.shape] + ([yshape] if z is not None else [])
        kern = fk.make_kernel("Conv", dict(attrs, activation=act or "none", layout="nchwc"), ins,
                              ["float32"] * len(ins), [yshape], ["float32"], {{1: wt, 2: b}})
        y = blocked(z) if z_mode == "in_place" else np.empty(yshape, np.float32)
        zin = [] if z is None else [y if z_mode == "in_place" else blocked(z)]
        kern.run([blocked(x), None, None] + zin, [y])
        np.testing.assert_allclose(y, blocked(ref), rtol=1e-4, atol=1e-4,
                                   err_msg=f"nchwc winograd {{(n, c, h, w, m, p)}} {{act}} {{z_mode}}")
    try:  # only Winograd convs take the NCHWc layout
        fk.make_kernel("Conv", dict(group=1, strides=[2, 2], dilations=[1, 1], pads=[1] * 4,
                                    layout="nchwc"), [(1, 8, 8, 8, 8), (64, 64, 3, 3)],
                       ["float32"] * 2, [(1, 8, 4, 4, 8)], ["float32"],
                       {{1: np.zeros((64, 64, 3, 3), np.float32)}})
        raise AssertionError("a stride-2 conv took layout nchwc")
    except ValueError as e:
        assert "Winograd" in str(e), e
    print("ok", fk.isa())
""")


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_kernel_matches_numpy(cap, threads):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(SCRIPT.format(threads=threads), cap, timeout=300)
    assert out.split() == ["ok", cap]
