"""Nodes OpenVINO claims but computes differently from the ONNX spec (found by the onnx node
conformance cases, tests/providers/openvino/test_openvino_node_cases.py). The capability step
refuses them, with the reason, so they run on the next provider instead of giving wrong
results. Each check is as narrow as the failure: the same op in other forms stays on OpenVINO.
"""

from __future__ import annotations

import functools
import math
import re

from runtime import ir


@functools.lru_cache(maxsize=1)
def openvino_version() -> tuple[int, int, int]:
    """(year, minor, patch) of the OpenVINO in use; (0, 0, 0) when it cannot be told."""
    try:
        import openvino

        text = openvino.get_version()
    except Exception:  # noqa: BLE001 - treated as the oldest version
        return (0, 0, 0)
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else (0, 0, 0)


# The oldest version seen to pass each older failure below (onnx node cases, checked with
# 2024.6.0, 2025.4.1 and 2026.4.1): versions before it get the guard.
POOL_AND_CONVTRANSPOSE_OK = (2025, 4, 1)  # 2024.6.0 fails
RESHAPE_ALLOWZERO_OK = (2026, 4, 1)  # 2025.4.1 fails


def _before(version: tuple[int, int, int]) -> bool:
    return openvino_version() < version


def _avgpool_dilations(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # Older OpenVINO ignores AveragePool's dilations (onnx cases test_averagepool_*dilations*).
    if _before(POOL_AND_CONVTRANSPOSE_OK) and any(d != 1 for d in node.attrs.get("dilations", [])):
        return "this OpenVINO version ignores AveragePool dilations"
    return _pool_ceil(graph, node, constants)


def _convtranspose_same(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # Older OpenVINO sizes ConvTranspose with auto_pad=SAME_* wrongly (test_convtranspose_
    # autopad_same).
    pad = node.attrs.get("auto_pad", "NOTSET")
    pad = pad.decode() if isinstance(pad, bytes) else pad
    if _before(POOL_AND_CONVTRANSPOSE_OK) and pad in ("SAME_UPPER", "SAME_LOWER"):
        return "this OpenVINO version sizes ConvTranspose with auto_pad=SAME_* wrongly"
    return None


def _reshape_allowzero(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # Older OpenVINO rejects allowzero=1 reshapes of empty tensors (test_reshape_allowzero_
    # reordered).
    if _before(RESHAPE_ALLOWZERO_OK) and node.attrs.get("allowzero", 0):
        return "this OpenVINO version mishandles Reshape with allowzero=1"
    return None


def _tile(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # OpenVINO 2026.4's CPU plugin returns uninitialised memory for Tile when the repeats are
    # a run-time input (onnx case test_tile); constant repeats are fine.
    if len(node.inputs) > 1 and node.inputs[1] not in constants:
        return "OpenVINO computes Tile with non-constant repeats wrongly"
    return None


def _pool_ceil(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # With ceil_mode=1 ONNX drops the last window when it would start inside the end padding;
    # OpenVINO keeps it (onnx case test_maxpool_2d_ceil_output_size_reduce_by_one).
    if not node.attrs.get("ceil_mode", 0):
        return None
    if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        return None
    vi = graph.lookup_info(node.inputs[0])
    kernel = list(node.attrs.get("kernel_shape", []))
    if vi is None or vi.shape is None or not kernel:
        return "ceil_mode=1 with unknown input shape (OpenVINO may keep a window ONNX drops)"
    spatial = vi.shape[2:]
    rank = len(kernel)
    strides = list(node.attrs.get("strides", [1] * rank))
    dilations = list(node.attrs.get("dilations", [1] * rank))
    pads = list(node.attrs.get("pads", [0] * (2 * rank)))
    for i, size in enumerate(spatial):
        if not isinstance(size, int):
            return "ceil_mode=1 with a symbolic spatial dim (OpenVINO may keep a window ONNX drops)"
        span = size + pads[i] + pads[i + rank] - dilations[i] * (kernel[i] - 1) - 1
        out = math.ceil(span / strides[i]) + 1
        if (out - 1) * strides[i] >= size + pads[i]:
            return ("ceil_mode=1 where the last window starts in the padding: OpenVINO keeps it, "
                    "ONNX drops it")
    return None


def _topk_runtime_k(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # With K a run-time input, OpenVINO does not put the lower index first among equal values
    # (onnx cases test_top_k_same_values*); a constant K keeps the ONNX order.
    if len(node.inputs) > 1 and node.inputs[1] not in constants:
        return "OpenVINO orders ties differently from ONNX when TopK's K is not constant"
    return None


def _reduce_empty(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    # An empty ReduceMax/ReduceMin gives -FLT_MAX/FLT_MAX on OpenVINO, -inf/inf in ONNX
    # (test_reduce_max_empty_set).
    vi = graph.lookup_info(node.inputs[0]) if node.inputs else None
    if vi is not None and vi.shape is not None and 0 in vi.shape:
        return f"OpenVINO's {node.op_type} of an empty tensor is not +-inf as in ONNX"
    return None


CHECKS = {
    ("", "TopK"): _topk_runtime_k,
    ("", "ReduceMax"): _reduce_empty,
    ("", "ReduceMin"): _reduce_empty,
    ("", "Tile"): _tile,
    ("", "MaxPool"): _pool_ceil,
    ("", "AveragePool"): _avgpool_dilations,
    ("", "ConvTranspose"): _convtranspose_same,
    ("", "Reshape"): _reshape_allowzero,
}


def known_issue(graph: ir.Graph, node: ir.Node, constants: set[str]) -> str | None:
    check = CHECKS.get((node.domain or "", node.op_type))
    return check(graph, node, constants) if check else None
