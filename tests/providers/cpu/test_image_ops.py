"""Image ops (Resize, Upsample, GridSample, RoiAlign, MaxRoiPool, NonMaxSuppression,
AffineGrid): onnx node cases and comparisons with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.providers.cpu.node_case_runner import (
    check_case,
    compare_with_ort,
    node_cases,
    run_model,
    single_node_model,
)

OPS = {"Resize", "Upsample", "GridSample", "RoiAlign", "NonMaxSuppression", "AffineGrid",
       "MaxRoiPool"}
# The onnx reference maps align_corners with the fractional output length (scale * length)
# when scales are given; the spec's formula and onnxruntime use the integer output length,
# and so do we.
REFERENCE_DIFFERS = {
    "test_resize_downsample_scales_linear_align_corners",
    "test_resize_downsample_scales_cubic_align_corners",
}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    if case.name in REFERENCE_DIFFERS:
        pytest.xfail("onnx reference uses a fractional length for align_corners; ORT does not")
    check_case(case, fallback=False)


def test_align_corners_cases_match_onnxruntime():
    from tests.providers.cpu.node_case_runner import assert_value_close, ort_run

    for case in CASES:
        if case.name not in REFERENCE_DIFFERS:
            continue
        inputs = case.data_sets[0][0]
        names = [i.name for i in case.model.graph.input]
        feeds = dict(zip(names, inputs))
        expected = ort_run(case.model, feeds)
        got = run_model(case.model, feeds, fallback=False)
        assert_value_close(expected[0], got[0], 1e-5, 1e-6)


rng = np.random.default_rng(0)
X = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
ROI = np.array([0, 0, 0.1, 0.3, 1, 1, 0.8, 1.2], np.float32)
SCALES = [[1, 1, 2, 3], [1, 1, 0.6, 0.4], [1, 1, 1.7, 0.75], [1, 1, 0.5, 2.5],
          [1, 1, 0.2, 0.15]]
CTMS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
        "asymmetric", "tf_crop_and_resize"]


def _resize(inputs, opset=19, rtol=1e-4, atol=1e-5, **attrs):
    compare_with_ort("Resize", inputs, ["Y"], opset, rtol=rtol, atol=atol, **attrs)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_scales(mode, ctm):
    for sc in SCALES:
        if ctm == "half_pixel_symmetric" and sc[2] == 0.6 and mode == "nearest":
            continue  # x_original lands on an exact integer: a float32 rounding tie
        roi = ROI if ctm == "tf_crop_and_resize" else None
        variants = [{}]
        if mode == "nearest":
            variants = [{"nearest_mode": m} for m in ("round_prefer_floor", "round_prefer_ceil",
                                                      "floor", "ceil")]
        elif mode == "cubic":
            variants = [{}, {"exclude_outside": 1}, {"cubic_coeff_a": -0.5}]
        for extra in variants:
            if ctm == "tf_crop_and_resize":
                extra = dict(extra, extrapolation_value=-7.0)
            _resize({"X": X, "roi": roi, "scales": np.array(sc, np.float32)}, mode=mode,
                    coordinate_transformation_mode=ctm, **extra)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_sizes(mode, ctm):
    for sz in [[1, 2, 9, 3], [1, 2, 1, 1], [1, 2, 10, 14], [1, 2, 4, 4]]:
        roi = ROI if ctm == "tf_crop_and_resize" else None
        _resize({"X": X, "roi": roi, "scales": None, "sizes": np.array(sz, np.int64)},
                mode=mode, coordinate_transformation_mode=ctm)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("attrs", [{}, {"exclude_outside": 1},
                                   {"coordinate_transformation_mode": "asymmetric"}], ids=str)
def test_resize_antialias(mode, attrs):
    for sc in SCALES:
        _resize({"X": X, "roi": None, "scales": np.array(sc, np.float32)}, mode=mode,
                antialias=1, **attrs)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_axes_and_aspect_policy(policy):
    sizes = np.array([3, 9], np.int64)
    _resize({"X": X, "roi": None, "scales": None, "sizes": sizes}, mode="linear",
            axes=[2, 3], keep_aspect_ratio_policy=policy)
    _resize({"X": X, "roi": None, "scales": None, "sizes": sizes[::-1].copy()},
            mode="nearest", axes=[3, 2], keep_aspect_ratio_policy=policy)


def test_resize_negative_axes():
    # onnxruntime ignores negative axes under keep_aspect_ratio_policy (it resizes nothing);
    # the spec allows them: check against the same resize with positive axes.
    for policy in ["stretch", "not_larger", "not_smaller"]:
        inputs = {"X": X, "roi": None, "scales": None, "sizes": np.array([9, 3], np.int64)}
        neg = single_node_model("Resize", inputs, ["Y"], 19, mode="nearest", axes=[-1, -2],
                                keep_aspect_ratio_policy=policy)
        pos = single_node_model("Resize", inputs, ["Y"], 19, mode="nearest", axes=[3, 2],
                                keep_aspect_ratio_policy=policy)
        feeds = {"X": X, "sizes": inputs["sizes"]}
        np.testing.assert_array_equal(run_model(neg, feeds)[0], run_model(pos, feeds)[0])


@pytest.mark.parametrize("opset,inputs,attrs", [
    (11, {"X": X, "roi": np.array([], np.float32),
          "scales": np.array([1, 1, 2, 0.5], np.float32)}, {"mode": "linear"}),
    (11, {"X": X, "roi": np.array([], np.float32), "scales": np.array([], np.float32),
          "sizes": np.array([1, 2, 3, 11], np.int64)}, {"mode": "cubic"}),
    (11, {"X": X, "roi": np.array([], np.float32),
          "scales": np.array([1, 1, 2, 0.5], np.float32)},
     {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"}),
    (13, {"X": X, "roi": None, "scales": np.array([1, 1, 2, 0.5], np.float32)},
     {"mode": "linear"}),
], ids=["11_scales", "11_sizes", "11_tf_half_pixel_for_nn", "13"])
def test_resize_older_opsets(opset, inputs, attrs):
    _resize(inputs, opset, **attrs)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_10(mode):
    for sc in SCALES:
        _resize({"X": X, "scales": np.array(sc, np.float32)}, 10, mode=mode)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.float16])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_other_types(dtype, mode):
    if dtype == np.uint8:
        x = rng.integers(0, 255, X.shape).astype(dtype)
    else:
        x = (X * 60).astype(dtype)
    # Integer results truncate; the last float bit may differ from onnxruntime's order of
    # operations, hence a tolerance of one unit.
    _resize({"X": x, "roi": None, "scales": np.array([1, 1, 1.6, 0.7], np.float32)},
            mode=mode, rtol=1e-3, atol=1)


def test_resize_higher_and_lower_ranks():
    x5 = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    s5 = np.array([1, 1, 2, 1.5, 0.6], np.float32)
    _resize({"X": x5, "roi": None, "scales": s5}, mode="linear")
    _resize({"X": x5, "roi": None, "scales": s5}, mode="nearest")
    _resize({"X": X[0, 0], "roi": None, "scales": np.array([2, 1.5], np.float32)}, mode="cubic")
    _resize({"X": X, "roi": None, "scales": np.array([2, 1.5, 1, 1], np.float32)},
            mode="nearest")


def test_resize_tf_crop_and_resize_on_unscaled_axis():
    # A crop on an axis of scale 1 still crops (spec, onnx reference); onnxruntime skips the
    # axis. Check it equals cropping with sizes, which onnxruntime does handle.
    scaled = {"X": X, "roi": ROI, "scales": np.array([1, 1, 3, 1], np.float32)}
    m = single_node_model("Resize", scaled, ["Y"], 19, mode="linear",
                          coordinate_transformation_mode="tf_crop_and_resize")
    got = run_model(m, {"X": X, "roi": ROI, "scales": scaled["scales"]})[0]
    sized = {"X": X, "roi": ROI, "scales": None, "sizes": np.array([1, 2, 15, 7], np.int64)}
    ref = run_model(single_node_model("Resize", sized, ["Y"], 19, mode="linear",
                                      coordinate_transformation_mode="tf_crop_and_resize"),
                    {"X": X, "roi": ROI, "sizes": sized["sizes"]})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert (got[..., -1] == 0).all()  # roi end 1.2 on the last axis extrapolates


@pytest.mark.parametrize("opset", [7, 9])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(opset, mode):
    x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    scales = np.array([1, 1, 2, 1.5], np.float32)
    if opset == 7:
        compare_with_ort("Upsample", {"X": x}, ["Y"], 7, mode=mode, scales=scales.tolist())
    else:
        compare_with_ort("Upsample", {"X": x, "scales": scales}, ["Y"], 9, mode=mode)


GS_X = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
GS_GRID = rng.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)
GS_GRID.flat[:8] = [-1, -1, 1, 1, 0, 0, -1.1, 1.05]


@pytest.mark.parametrize("opset,mode", [(16, "bilinear"), (16, "nearest"), (16, "bicubic"),
                                        (20, "linear"), (20, "nearest"), (20, "cubic")])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_2d(opset, mode, padding_mode, align_corners):
    compare_with_ort("GridSample", {"X": GS_X, "grid": GS_GRID}, ["Y"], opset, rtol=1e-4,
                     atol=1e-5, mode=mode, padding_mode=padding_mode,
                     align_corners=align_corners)


@pytest.mark.parametrize("mode", ["linear", "nearest"])  # ORT has no 3-D cubic
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_3d(mode, padding_mode, align_corners):
    x = rng.standard_normal((1, 2, 4, 5, 3)).astype(np.float32)
    grid = rng.uniform(-1.3, 1.3, (1, 3, 4, 2, 3)).astype(np.float32)
    compare_with_ort("GridSample", {"X": x, "grid": grid}, ["Y"], 20, rtol=1e-4, atol=1e-5,
                     mode=mode, padding_mode=padding_mode, align_corners=align_corners)


def test_grid_sample_3d_cubic_and_1d_are_consistent():
    # ORT lacks these forms: a grid constant along extra axes reduces N-d to fewer dims.
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    grid = rng.uniform(-1.2, 1.2, (1, 5, 1)).astype(np.float32)
    m1 = single_node_model("GridSample", {"X": x, "grid": grid}, ["Y"], 20, mode="cubic")
    y1 = run_model(m1, {"X": x, "grid": grid})[0]
    x2 = np.repeat(x[:, :, None, :], 3, axis=2)
    grid2 = np.stack([np.repeat(grid[..., 0][:, None, :], 2, axis=1),
                      np.zeros((1, 2, 5), np.float32)], axis=-1)
    m2 = single_node_model("GridSample", {"X": x2, "grid": grid2}, ["Y"], 20, mode="cubic",
                           padding_mode="border")
    y2 = run_model(m2, {"X": x2, "grid": grid2})[0]
    m1b = single_node_model("GridSample", {"X": x, "grid": grid}, ["Y"], 20, mode="cubic",
                            padding_mode="border")
    y1b = run_model(m1b, {"X": x, "grid": grid})[0]
    np.testing.assert_allclose(y2[:, :, 0], y1b, rtol=1e-5, atol=1e-6)
    assert y1.shape == (1, 2, 5)


@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_nearest_ties(align_corners):
    grid = np.array(np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 5)),
                    np.float32).transpose(1, 2, 0)[None]
    compare_with_ort("GridSample", {"X": GS_X[:1], "grid": grid}, ["Y"], 20, mode="nearest",
                     align_corners=align_corners)


@pytest.mark.parametrize("align_corners", [0, 1])
def test_affine_grid(align_corners):
    theta2 = rng.standard_normal((2, 2, 3)).astype(np.float32)
    compare_with_ort("AffineGrid", {"theta": theta2, "size": np.array([2, 3, 5, 6], np.int64)},
                     ["g"], 20, align_corners=align_corners)
    theta3 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    compare_with_ort("AffineGrid", {"theta": theta3,
                                    "size": np.array([2, 3, 4, 5, 6], np.int64)},
                     ["g"], 20, align_corners=align_corners)


def test_affine_grid_unit_length_without_align_corners():
    theta3 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    compare_with_ort("AffineGrid", {"theta": theta3, "size": np.array([2, 3, 1, 5, 1],
                                                                      np.int64)},
                     ["g"], 20, align_corners=0)


ROIS = np.array([[0, 0, 9, 9], [1.5, 2.2, 7.7, 9.1], [-2, -1, 3, 4], [5, 5, 5.2, 5.1],
                 [8, 7, 14, 13], [3, 3, 2, 1]], np.float32)
ROI_BATCH = np.array([0, 1, 0, 1, 1, 0], np.int64)
ROI_X = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)


@pytest.mark.parametrize("opset", [10, 16])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5])
def test_roi_align(opset, mode, sampling_ratio, spatial_scale):
    ctms = ["half_pixel", "output_half_pixel"] if opset >= 16 else [None]
    for ctm in ctms:
        attrs = {"mode": mode, "sampling_ratio": sampling_ratio, "spatial_scale": spatial_scale,
                 "output_height": 3, "output_width": 4}
        if ctm:
            attrs["coordinate_transformation_mode"] = ctm
        compare_with_ort("RoiAlign", {"X": ROI_X, "rois": ROIS, "bi": ROI_BATCH}, ["Y"], opset,
                         rtol=1e-4, atol=1e-5, **attrs)


@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25])
def test_max_roi_pool(spatial_scale):
    rois = np.concatenate([ROI_BATCH[:, None].astype(np.float32), ROIS], axis=1)
    compare_with_ort("MaxRoiPool", {"X": ROI_X, "rois": rois}, ["Y"], 1, pooled_shape=[3, 4],
                     spatial_scale=spatial_scale)


def _nms_inputs():
    boxes = rng.uniform(0, 10, (2, 30, 4)).astype(np.float32)
    boxes[:, :, 2:] = boxes[:, :, :2] + rng.uniform(0.5, 5, (2, 30, 2))
    boxes[0, 3] = boxes[0, 4]  # duplicates
    boxes[1, 5] = boxes[1, 5][[2, 3, 0, 1]]  # corners in the other order
    scores = rng.uniform(0, 1, (2, 3, 30)).astype(np.float32)
    scores[0, 0, 7] = scores[0, 0, 8]  # a tie
    return boxes, scores


@pytest.mark.parametrize("center_point_box", [0, 1])
@pytest.mark.parametrize("max_out", [None, 0, 3, 100])
@pytest.mark.parametrize("iou", [None, 0.0, 0.3, 0.7])
@pytest.mark.parametrize("score", [None, 0.4])
def test_non_max_suppression(center_point_box, max_out, iou, score):
    boxes, scores = _nms_inputs()
    inputs = {"boxes": boxes, "scores": scores,
              "mo": None if max_out is None else np.array([max_out], np.int64),
              "iou": None if iou is None and score is None else np.array([iou or 0.0],
                                                                          np.float32),
              "st": None if score is None else np.array([score], np.float32)}
    compare_with_ort("NonMaxSuppression", inputs, ["sel"], 11,
                     center_point_box=center_point_box)
