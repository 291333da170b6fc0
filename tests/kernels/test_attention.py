"""The C++ MultiHeadAttention kernel against a float64 numpy softmax(scale Q K^T + mask) V, for
packed and separate Q/K/V, broadcast masks, odd sizes, on every ISA path this CPU has (each cap
in a subprocess: the ISA is read once at import), with 1 and 2 threads. The fused graphs are
checked against onnxruntime in tests/runtime/optimizer/test_attention_fusion.py."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.kernels.op_kernel_cases import run_script_capped

ferry_kernels = pytest.importorskip("ferry_kernels")

SCRIPT = textwrap.dedent("""
    import numpy as np, ferry_kernels as fk
    from providers.cpu import native
    from providers.cpu.ops.fused import _mha_native
    fk.set_num_threads(int({threads}))
    rng = np.random.default_rng(0)

    def reference(q, k, v, mask, h, scale):
        b, s, _ = q.shape
        t = k.shape[1]
        d, dv = q.shape[2] // h, v.shape[2] // h
        qh = q.astype(np.float64).reshape(b, s, h, d).transpose(0, 2, 1, 3)
        kh = k.astype(np.float64).reshape(b, t, h, d).transpose(0, 2, 3, 1)
        vh = v.astype(np.float64).reshape(b, t, h, dv).transpose(0, 2, 1, 3)
        sc = qh @ kh * scale
        if mask is not None:  # added in float32 as the model does (-1e4 costs precision)
            sc = (sc.astype(np.float32) + mask).astype(np.float64)
        e = np.exp(sc - sc.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        return (p @ vh).transpose(0, 2, 1, 3).reshape(b, s, h * dv)

    cases = [  # (B, S, T, H, D, Dv, packed, mask shape with T for the key length)
        (1, 128, 128, 12, 64, 64, True, (1, 1, 128, "T")),
        (2, 7, 13, 3, 5, 6, False, (2, 1, 1, "T")),
        (1, 130, 130, 2, 8, 8, True, None),
        (3, 65, 9, 4, 16, 8, False, ("T",)),
        (1, 1, 1, 1, 1, 1, True, (1,)),
        (2, 5, 5, 2, 3, 3, False, (2, 2, 5, "T")),
        (1, 3, 200, 1, 17, 33, False, (3, 1)),
        (2, 31, 31, 5, 7, 7, True, (1, 5, 31, "T")),
    ]
    for bsz, s, t, h, d, dv, packed, mshape in cases:
        scale = float(d) ** -0.5
        if packed:
            t = s
            qkv = rng.standard_normal((bsz, s, h * (2 * d + dv))).astype(np.float32)
            ins = [qkv, None, None]
            q, k, v = qkv[..., :h * d], qkv[..., h * d:2 * h * d], qkv[..., 2 * h * d:]
            attrs = dict(num_heads=h, scale=scale, qkv_hidden_sizes=[h * d, h * d, h * dv])
        else:
            q = rng.standard_normal((bsz, s, h * d)).astype(np.float32)
            k = rng.standard_normal((bsz, t, h * d)).astype(np.float32)
            v = rng.standard_normal((bsz, t, h * dv)).astype(np.float32)
            ins = [q, k, v]
            attrs = dict(num_heads=h, scale=scale)
        mask = None
        if mshape is not None:
            ms = tuple(t if e == "T" else e for e in mshape)
            mask = np.where(rng.random(ms) < 0.25, -1e4, rng.standard_normal(ms)).astype(
                np.float32)
        ins.append(mask)
        call = _mha_native(ins, attrs)
        assert call is not None and call.kernel == "MultiHeadAttention", (bsz, s, t, h)
        kern = native.make(call, [None if x is None else x.shape for x in ins],
                           [None if x is None else x.dtype for x in ins])
        y = np.full(call.output_shapes[0], np.nan, np.float32)
        kern.run(ins, [y])
        ref = reference(q, k, v, mask, h, scale)
        np.testing.assert_allclose(y, ref, rtol=2e-5, atol=2e-5,
                                   err_msg=str((bsz, s, t, h, d, dv, packed, mshape)))
    print("ok", fk.isa())
""")


@pytest.mark.parametrize("cap", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("threads", [1, 2])
def test_attention_kernel_matches_numpy(cap, threads):
    if cap not in ferry_kernels.supported_isas():
        pytest.skip(f"this CPU has no {cap}")
    out = run_script_capped(SCRIPT.format(threads=threads), cap, timeout=300)
    assert out.split() == ["ok", cap]


def test_attention_kernel_rejects_inconsistent_layouts():
    from providers.cpu import native
    from providers.cpu.ops.fused import _mha_native

    q = np.zeros((1, 4, 8), np.float32)
    call = _mha_native([q, None, None, None], dict(num_heads=2, scale=1.0,
                                                    qkv_hidden_sizes=[2, 2, 4]))
    assert call is not None
    call.params["v_col"] = 6  # V would run past the row
    with pytest.raises(ValueError, match="V does not match"):
        native.make(call, [q.shape, None, None, None], [q.dtype, None, None, None])
    # A mask that does not broadcast leaves the node to numpy, which raises like Add would.
    assert _mha_native([q, None, None, np.zeros((3, 4), np.float32)],
                       dict(num_heads=2, scale=1.0, qkv_hidden_sizes=[2, 2, 4])) is None
