"""The NCHWc kernel family (channels blocked by 8, [N, C/8, H, W, 8]): NchwcDepthwiseConv, the
NchwcReorderInput / NchwcReorderOutput reorders and the NCHWc pools, against the numpy NCHW
references (converted with to_nchwc), on every ISA path this CPU has (each cap in its own
interpreter: the ISA is read once at import) and on 1 and 2 threads; bit-identical results
for 1 and 2 threads; bad arguments raise ValueError."""

from __future__ import annotations

import textwrap

import pytest

from tests.kernels.op_kernel_cases import run_script_capped

ferry_kernels = pytest.importorskip("ferry_kernels")

SCRIPT = textwrap.dedent("""
    import itertools, numpy as np, ferry_kernels as fk
    from providers.cpu.ops import conv as conv_ops
    from providers.cpu.ops import pool as pool_ops
    from providers.cpu.ops.fused import apply_activation
    fk.set_num_threads(int({threads}))
    rng = np.random.default_rng(0)
    F = "float32"

    def to_nchwc(x):
        n, c, h, w = x.shape
        return np.ascontiguousarray(x.reshape(n, c // 8, 8, h, w).transpose(0, 1, 3, 4, 2))

    def from_nchwc(y):
        n, cb, h, w, _ = y.shape
        return np.ascontiguousarray(y.transpose(0, 1, 4, 2, 3).reshape(n, cb * 8, h, w))

    # ---- NchwcDepthwiseConv --------------------------------------------------------------
    # (N, C, H, W, k, stride, pads, dilation)
    dw_cases = [
        (1, 16, 14, 14, 3, 1, 1, 1),
        (2, 8, 13, 17, 3, 2, 1, 1),
        (1, 8, 14, 14, 5, 1, 2, 1),
        (1, 16, 13, 17, 5, 2, 2, 1),
        (1, 16, 13, 17, 1, 1, 0, 1),            # 1x1: the streaming (BatchNormalization) path
        (1, 8, 7, 7, 1, 2, 0, 1),               # 1x1 stride 2
        (1, 8, 14, 14, 7, 1, 3, 1),
        (1, 8, 13, 17, 7, 2, 3, 1),
        (1, 8, 14, 14, 3, 1, 2, 2),             # dilation 2: the generic loop
        (1, 8, 13, 17, 3, 2, (0, 2, 1, 0), 1),  # asymmetric pads
        (1, 8, 7, 7, (3, 5), 1, (1, 2, 0, 1), 1),  # 3x5, asymmetric pads
        (1, 8, 1, 1, 3, 1, 1, 1),               # 1x1 map, 3x3: only the centre tap
        (1, 8, 1, 1, 5, 2, 2, 1),
        (1, 8, 2, 3, 3, 1, 1, 1),
        (1, 8, 2, 3, 5, 2, 2, 1),               # window wider than the input
        (2, 16, 7, 7, 3, 1, 1, 1),
        (1, 8, 7, 7, 3, 3, 1, 1),               # stride 3: the generic loop
        (1, 8, 9, 20, 4, 1, 0, 1),              # 4 wide: the generic loop, no padding
        (1, 8, 56, 56, 3, 1, 1, 1),
    ]
    acts = [("", []), ("relu", []), ("clip", [-0.5, 0.5]), ("silu", []), ("sigmoid", [])]
    for ci, (n, c, h, w, k, s, p, d) in enumerate(dw_cases):
        kh, kw = (k, k) if isinstance(k, int) else k
        pads = [p] * 4 if isinstance(p, int) else list(p)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c, 1, kh, kw)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        attrs = dict(group=c, strides=[s, s], dilations=[d, d], pads=pads, kernel_shape=[kh, kw])
        conv_b = conv_ops.conv(x, wt, b, **attrs)
        conv_nb = conv_ops.conv(x, wt, None, **attrs)
        xc = to_nchwc(x)
        # every activation with bias; then bias/no-bias x residual variants on a cheap subset
        variants = [(a, True, "none") for a in acts]
        variants += [(acts[i % len(acts)], use_b, zmode) for i, (use_b, zmode) in enumerate(
            itertools.product([False, True], ["sep", "inplace"]))]
        if h * w > 1000:
            variants = variants[::3]
        for (act, params), use_b, zmode in variants:
            ref = conv_b if use_b else conv_nb
            z = rng.standard_normal(ref.shape).astype(np.float32) if zmode != "none" else None
            if z is not None:
                ref = ref + z
            ref = apply_activation(ref, act, params)
            pk = dict(attrs, activation=act or "none")
            if act == "clip":
                pk.update(activation_alpha=params[0], activation_beta=params[1])
            yshape = to_nchwc(ref).shape
            ins = [xc.shape, wt.shape, b.shape if use_b else ()]
            dts = [F, F, F if use_b else None]
            if z is not None:
                ins.append(yshape)
                dts.append(F)
            consts = {{1: wt, 2: b}} if use_b and ci % 2 == 0 else {{1: wt}}  # B run time on odd
            kern = fk.make_kernel("NchwcDepthwiseConv", pk, ins, dts, [yshape], [F], consts)
            feeds = [xc, None, None if 2 in consts else (b if use_b else None)]
            if zmode == "sep":
                zc = to_nchwc(z)
                y = np.empty(yshape, np.float32)
                kern.run(feeds + [zc], [y])
            elif zmode == "inplace":
                y = to_nchwc(z)
                kern.run(feeds + [y], [y])
            else:
                y = np.empty(yshape, np.float32)
                kern.run(feeds, [y])
            case = (n, c, h, w, k, s, p, d)
            np.testing.assert_allclose(from_nchwc(y), ref, rtol=1e-4, atol=1e-4,
                                       err_msg=f"dw {{case}} {{act}} b={{use_b}} z={{zmode}}")

    # ---- reorders ----------------------------------------------------------------------------
    for shape in [(2, 16, 13, 11), (1, 8, 1, 1), (1, 24, 3, 5), (2, 8, 56, 56), (1, 32, 7, 7),
                  (1, 8, 0, 4), (0, 8, 3, 3)]:
        x = rng.standard_normal(shape).astype(np.float32)
        n, c, h, w = shape
        bshape = (n, c // 8, h, w, 8)
        ki = fk.make_kernel("NchwcReorderInput", {{}}, [shape], [F], [bshape], [F])
        ko = fk.make_kernel("NchwcReorderOutput", {{}}, [bshape], [F], [shape], [F])
        yb = np.empty(bshape, np.float32)
        ki.run([x], [yb])
        np.testing.assert_array_equal(yb, to_nchwc(x), err_msg=f"reorder in {{shape}}")
        back = np.empty(shape, np.float32)
        ko.run([yb], [back])
        np.testing.assert_array_equal(back, x, err_msg=f"reorder out {{shape}}")

    # ---- window pools ------------------------------------------------------------------------
    # (N, C, H, W, k, stride, pads, dilation, ceil_mode)
    pool_cases = [
        (1, 16, 14, 14, 3, 2, 1, 1, 0),
        (2, 8, 13, 17, 3, 2, 1, 1, 0),
        (1, 8, 14, 14, 2, 2, 0, 1, 0),
        (1, 8, 15, 13, 2, 2, 0, 1, 1),           # ceil mode: a clipped last window
        (1, 16, 13, 17, 3, 1, 1, 1, 0),
        (1, 8, 55, 55, 3, 2, 0, 1, 1),           # 55 -> 27 with ceil
        (1, 8, 12, 11, 3, 2, 0, 1, 1),
        (1, 8, 11, 12, 3, 1, 2, 2, 0),           # dilation 2
        (1, 8, 9, 10, (2, 4), (1, 3), (1, 0, 0, 2), 1, 0),  # generic widths / strides
        (1, 8, 1, 1, 3, 1, 1, 1, 0),
        (1, 8, 2, 3, 5, 2, 2, 1, 0),             # window larger than the input
        (1, 8, 7, 7, 7, 1, 0, 1, 0),
        (1, 8, 40, 37, 3, 2, 1, 1, 0),
    ]
    for (n, c, h, w, k, s, p, d, ceil) in pool_cases:
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (s, s) if isinstance(s, int) else s
        pads = [p] * 4 if isinstance(p, int) else list(p)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        xc = to_nchwc(x)
        geo = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=pads, dilations=[d, d])
        ref = pool_ops.max_pool(x, ceil_mode=ceil, **geo)
        out, pb, pe = pool_ops._geometry(x.shape[2:], [kh, kw], [sh, sw], pads, [d, d], "NOTSET",
                                         ceil)
        yshape = (n, c // 8, out[0], out[1], 8)
        assert ref.shape[2:] == tuple(out)
        kern = fk.make_kernel("NchwcMaxPool", geo, [xc.shape], [F], [yshape], [F])
        y = np.empty(yshape, np.float32)
        kern.run([xc], [y])
        np.testing.assert_allclose(from_nchwc(y), ref, rtol=1e-5, atol=1e-5,
                                   err_msg=f"maxpool {{(n, c, h, w, k, s, p, d, ceil)}}")
        for cip in (0, 1):
            ref = pool_ops.average_pool(x, ceil_mode=ceil, count_include_pad=cip, **geo)
            # pads_begin / pads_end, as providers/cpu/ops/pool.py passes them
            params = dict(kernel_shape=[kh, kw], strides=[sh, sw], dilations=[d, d],
                          pads_begin=pb, pads_end=pe, count_include_pad=cip)
            kern = fk.make_kernel("NchwcAveragePool", params, [xc.shape], [F], [yshape], [F])
            y = np.empty(yshape, np.float32)
            kern.run([xc], [y])
            case = (n, c, h, w, k, s, p, d, ceil)
            np.testing.assert_allclose(from_nchwc(y), ref, rtol=1e-5, atol=1e-5,
                                       err_msg=f"avgpool {{case}} cip={{cip}}")

    # ---- global pools ------------------------------------------------------------------------
    for shape in [(1, 16, 7, 7), (2, 8, 1, 1), (1, 24, 13, 11), (2, 8, 56, 56)]:
        x = rng.standard_normal(shape).astype(np.float32)
        xc = to_nchwc(x)
        for name, fn in [("NchwcGlobalAveragePool", pool_ops.global_average_pool),
                         ("NchwcGlobalMaxPool", pool_ops.global_max_pool)]:
            ref = fn(x)
            kern = fk.make_kernel(name, {{}}, [xc.shape], [F], [ref.shape], [F])
            y = np.empty(ref.shape, np.float32)
            kern.run([xc], [y])
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5, err_msg=f"{{name}} {{shape}}")

    # ---- bad arguments -----------------------------------------------------------------------
    def bad(name, params, ins, outs, consts=None, dts=None):
        try:
            fk.make_kernel(name, params, ins, dts or [F] * len(ins), outs, [F] * len(outs),
                           consts or {{}})
        except ValueError:
            return
        raise AssertionError(f"{{name}} {{params}} {{ins}} {{outs}}: no ValueError")
    wt = np.ones((16, 1, 3, 3), np.float32)
    dwp = dict(group=16, strides=[1, 1], dilations=[1, 1], pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    bad("NchwcDepthwiseConv", dwp, [(1, 2, 5, 5, 8), wt.shape], [(1, 2, 5, 5, 8)])  # W not const
    bad("NchwcDepthwiseConv", dwp, [(1, 2, 5, 5, 8), wt.shape], [(1, 2, 4, 5, 8)], {{1: wt}})
    bad("NchwcDepthwiseConv", dwp, [(1, 2, 5, 5, 4), wt.shape], [(1, 2, 5, 5, 4)], {{1: wt}})
    bad("NchwcDepthwiseConv", dwp, [(1, 3, 5, 5, 8), wt.shape], [(1, 3, 5, 5, 8)], {{1: wt}})
    bad("NchwcDepthwiseConv", dict(dwp, group=1), [(1, 2, 5, 5, 8), wt.shape], [(1, 2, 5, 5, 8)],
        {{1: wt}})
    bad("NchwcDepthwiseConv", dict(dwp, kernel_shape=[5, 5]), [(1, 2, 5, 5, 8), wt.shape],
        [(1, 2, 5, 5, 8)], {{1: wt}})
    bad("NchwcDepthwiseConv", dwp, [(1, 2, 5, 5, 8), wt.shape, (8,)], [(1, 2, 5, 5, 8)], {{1: wt}})
    bad("NchwcDepthwiseConv", dwp, [(1, 2, 5, 5, 8), wt.shape, (16,), (1, 2, 5, 4, 8)],
        [(1, 2, 5, 5, 8)], {{1: wt}})
    bad("NchwcDepthwiseConv", dict(dwp, activation="nope"), [(1, 2, 5, 5, 8), wt.shape],
        [(1, 2, 5, 5, 8)], {{1: wt}})
    bad("NchwcDepthwiseConv", dwp, [(1, 2, 5, 5, 8), wt.shape], [(1, 2, 5, 5, 8)], {{1: wt}},
        ["float64", F])
    bad("NchwcReorderInput", {{}}, [(1, 12, 4, 4)], [(1, 1, 4, 4, 8)])    # C % 8 != 0
    bad("NchwcReorderInput", {{}}, [(1, 16, 4, 4)], [(1, 2, 4, 5, 8)])
    bad("NchwcReorderOutput", {{}}, [(1, 2, 4, 4, 8)], [(1, 12, 4, 4)])
    bad("NchwcReorderOutput", {{}}, [(1, 2, 4, 4, 4)], [(1, 16, 4, 4)])
    mp = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])
    bad("NchwcMaxPool", mp, [(1, 2, 5, 5, 4)], [(1, 2, 3, 3, 4)])
    bad("NchwcMaxPool", mp, [(1, 2, 5, 5, 8)], [(1, 3, 3, 3, 8)])
    bad("NchwcMaxPool", dict(mp, pads=[1, 1]), [(1, 2, 5, 5, 8)], [(1, 2, 3, 3, 8)])
    bad("NchwcMaxPool", dict(mp, strides=[0, 1]), [(1, 2, 5, 5, 8)], [(1, 2, 3, 3, 8)])
    bad("NchwcAveragePool", dict(mp, kernel_shape=[3]), [(1, 2, 5, 5, 8)], [(1, 2, 3, 3, 8)])
    bad("NchwcGlobalAveragePool", {{}}, [(1, 2, 5, 5, 8)], [(1, 2, 1, 1)])
    bad("NchwcGlobalMaxPool", {{}}, [(1, 2, 5, 5, 8)], [(1, 16, 1, 1, 8)])
    bad("NchwcGlobalMaxPool", {{}}, [(1, 16, 5, 5)], [(1, 16, 1, 1)])

    # ---- N = 0 and empty outputs run without touching memory -----------------------------------
    k0 = fk.make_kernel("NchwcDepthwiseConv", dwp, [(0, 2, 5, 5, 8), wt.shape], [F, F],
                        [(0, 2, 5, 5, 8)], [F], {{1: wt}})
    k0.run([np.empty((0, 2, 5, 5, 8), np.float32), None], [np.empty((0, 2, 5, 5, 8), np.float32)])
    k0 = fk.make_kernel("NchwcMaxPool", mp, [(0, 2, 5, 5, 8)], [F], [(0, 2, 3, 3, 8)], [F])
    k0.run([np.empty((0, 2, 5, 5, 8), np.float32)], [np.empty((0, 2, 3, 3, 8), np.float32)])
    print("ok", fk.isa())
""")

BITWISE = textwrap.dedent("""
    import numpy as np, ferry_kernels as fk
    rng = np.random.default_rng(1)
    F = "float32"
    x = rng.standard_normal((2, 12, 29, 31, 8)).astype(np.float32)
    wt = rng.standard_normal((96, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    outs = {{}}
    for threads in (1, 2):
        fk.set_num_threads(threads)
        res = []
        for s, act in [(1, "silu"), (2, "relu")]:
            oh, ow = (29 - 1) // s + 1, (31 - 1) // s + 1
            p = dict(group=96, strides=[s, s], dilations=[1, 1], pads=[1] * 4,
                     kernel_shape=[3, 3], activation=act)
            k = fk.make_kernel("NchwcDepthwiseConv", p, [x.shape, wt.shape, b.shape], [F] * 3,
                               [(2, 12, oh, ow, 8)], [F], {{1: wt, 2: b}})
            y = np.empty((2, 12, oh, ow, 8), np.float32)
            k.run([x, None, None], [y])
            res.append(y)
        mp = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])
        for name in ("NchwcMaxPool", "NchwcAveragePool"):
            k = fk.make_kernel(name, mp, [x.shape], [F], [(2, 12, 15, 16, 8)], [F])
            y = np.empty((2, 12, 15, 16, 8), np.float32)
            k.run([x], [y])
            res.append(y)
        k = fk.make_kernel("NchwcGlobalAveragePool", {{}}, [x.shape], [F], [(2, 96, 1, 1)], [F])
        y = np.empty((2, 96, 1, 1), np.float32)
        k.run([x], [y])
        res.append(y)
        outs[threads] = res
    for a, b in zip(outs[1], outs[2]):
        assert a.tobytes() == b.tobytes()
    print("ok", fk.isa())
""")


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("threads", [1, 2])
def test_nchwc_ops_match_numpy(cap, threads):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(SCRIPT.format(threads=threads), cap, timeout=300)
    assert out.split() == ["ok", cap]


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
def test_nchwc_ops_bit_identical_threads(cap):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(BITWISE.format(), cap, timeout=300)
    assert out.split() == ["ok", cap]
