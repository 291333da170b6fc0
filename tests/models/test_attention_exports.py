"""Attention written the way Hugging Face models write it (eager: matmul/softmax/matmul;
sdpa: torch's scaled_dot_product_attention), exported by PyTorch's TorchScript and dynamo
exporters: the optimizer fuses it into ferry::MultiHeadAttention and the session computes what
onnxruntime computes, at sequence lengths other than the example's."""

from __future__ import annotations

import collections
import io
import logging
import math
import warnings

import numpy as np
import pytest

from runtime import InferenceSession
from tests.conftest import ort_run

torch = pytest.importorskip("torch")

HIDDEN, HEADS = 32, 4


def _module(kind: str):
    nn = torch.nn
    fn = torch.nn.functional

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))
            self.o = nn.Linear(HIDDEN, HIDDEN)
            self.d = HIDDEN // HEADS

        def split(self, t):
            b, s, _ = t.shape
            return t.view(b, s, HEADS, self.d).transpose(1, 2)

        def forward(self, x, mask):
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            bias = (1.0 - mask[:, None, None, :]) * -10000.0
            if kind == "eager":
                scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d) + bias
                ctx = torch.matmul(scores.softmax(-1), v)
            else:
                ctx = fn.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            b, _, s, _ = ctx.shape
            return self.o(ctx.transpose(1, 2).reshape(b, s, HIDDEN))

    torch.manual_seed(0)
    return SelfAttention().eval()


def _export(kind: str, exporter: str) -> bytes:
    module = _module(kind)
    x = torch.randn(2, 6, HIDDEN)
    mask = torch.ones(2, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            buf = io.BytesIO()
            torch.onnx.export(module, (x, mask), buf, dynamo=False, opset_version=17,
                              input_names=["x", "mask"], output_names=["y"],
                              dynamic_axes={"x": {0: "b", 1: "s"}, "mask": {0: "b", 1: "s"},
                                            "y": {0: "b", 1: "s"}})
            return buf.getvalue()
        pytest.importorskip("onnxscript")
        quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export",
                                                "onnxscript", "torch")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        try:
            b, s = torch.export.Dim("b", min=1, max=64), torch.export.Dim("s", min=2, max=64)
            program = torch.onnx.export(module, (x, mask), dynamo=True,
                                        input_names=["x", "mask"], output_names=["y"],
                                        dynamic_shapes=({0: b, 1: s}, {0: b, 1: s}),
                                        verbose=False)
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
        return program.model_proto.SerializeToString()


@pytest.mark.parametrize("kind", ["eager", "sdpa"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_exported_attention_is_fused_and_matches_ort(kind, exporter):
    data = _export(kind, exporter)
    sess = InferenceSession(data, providers=["cpu"])
    ops = collections.Counter(n.op_type for n in sess._graph.nodes)
    assert ops["MultiHeadAttention"] == 1 and ops["Softmax"] == 0, ops
    import onnx
    model = onnx.load_from_string(data)
    rng = np.random.default_rng(3)
    for b, s in ((1, 6), (3, 11)):
        x = rng.standard_normal((b, s, HIDDEN)).astype(np.float32)
        mask = np.ones((b, s), np.float32)
        mask[-1, s // 2:] = 0.0  # padding in the last sequence
        got = sess.run(None, {"x": x, "mask": mask})[0]
        ref = ort_run(model, {"x": x, "mask": mask})[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
