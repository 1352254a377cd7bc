"""Decoding and NMS follow Ultralytics' non_max_suppression (and YOLOv5's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from defectlab.inference.engine.decode import (
    MAX_NMS,
    decode_end2end,
    decode_v5,
    decode_v8,
    masks,
    nms,
    outline,
    outlines,
)


def reference_nms(boxes: list[list[float]], scores: list[float], iou: float) -> list[int]:
    """Greedy NMS the slow way, one pair at a time (torchvision's rule: IoU above ``iou``
    suppresses), in float32 like it."""
    f = np.float32
    order = sorted(range(len(scores)), key=lambda k: (-f(scores[k]), k))
    suppressed = [False] * len(boxes)
    keep = []
    for position, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        ax1, ay1, ax2, ay2 = (f(v) for v in boxes[i])
        area_a = (ax2 - ax1) * (ay2 - ay1)
        for j in order[position + 1 :]:
            bx1, by1, bx2, by2 = (f(v) for v in boxes[j])
            width = max(f(0), min(ax2, bx2) - max(ax1, bx1))
            height = max(f(0), min(ay2, by2) - max(ay1, by1))
            inter = width * height
            union = area_a + (bx2 - bx1) * (by2 - by1) - inter
            if union > 0 and inter / union > f(iou):
                suppressed[j] = True
    return keep


box = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)).map(
    lambda b: [float(b[0]), float(b[1]), float(b[0] + b[2]), float(b[1] + b[3])]
)


@given(
    st.lists(st.tuples(box, st.integers(0, 20)), min_size=0, max_size=60),
    st.sampled_from([0.3, 0.45, 0.5, 0.7]),
    st.sampled_from([None, 1, 3, 7]),
    st.sampled_from([None, 1, 5]),
)
def test_nms_matches_the_slow_reference(
    items: list, iou: float, block_size: int | None, limit: int | None
) -> None:
    boxes = [b for b, _ in items]
    scores = [s / 20 for _, s in items]  # many equal scores: ties break by position
    array = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    kept = nms(array, np.array(scores), iou, limit, block_size=block_size)
    expected = reference_nms(boxes, scores, iou)
    assert kept.tolist() == (expected if limit is None else expected[:limit])


def test_iou_exactly_at_the_threshold_is_kept() -> None:
    boxes = np.array([[0, 0, 4, 1], [0, 0, 2, 1]], dtype=np.float32)  # IoU 2 / 4 = 0.5
    assert nms(boxes, np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(boxes, np.array([0.9, 0.8]), 0.49).tolist() == [0]


def test_a_long_chain_of_boxes_each_suppressing_the_next() -> None:
    # Shifted by one pixel: neighbours overlap 9/11 > 0.7, boxes two apart 8/12 < 0.7.
    boxes = [[float(k), 0.0, k + 10.0, 10.0] for k in range(300)]
    scores = [1.0 - k / 1000 for k in range(300)]
    kept = nms(np.array(boxes, np.float32), np.array(scores), 0.7)
    assert kept.tolist() == reference_nms(boxes, scores, 0.7) == list(range(0, 300, 2))


def test_limit_stops_after_that_many_kept() -> None:
    boxes = np.array([[k * 10, 0, k * 10 + 5, 5] for k in range(10)], dtype=np.float32)
    assert nms(boxes, np.linspace(0.1, 1, 10), 0.5, limit=3).tolist() == [9, 8, 7]


def v8(boxes_xywh: Sequence[Sequence[float]], scores: Sequence[Sequence[float]]) -> np.ndarray:
    return np.concatenate([np.array(boxes_xywh, np.float32).T, np.array(scores, np.float32).T])


def test_overlapping_boxes_of_different_classes_are_both_kept() -> None:
    output = v8(
        [[50, 50, 20, 20], [51, 50, 20, 20], [52, 50, 20, 20]], [[0.9, 0], [0, 0.8], [0.7, 0]]
    )
    found = decode_v8(output, classes_count=2, conf=0.25, iou=0.7, max_det=300)
    assert found.classes.tolist() == [0, 1]
    np.testing.assert_allclose(found.boxes[0], [40, 40, 60, 60])
    np.testing.assert_allclose(found.scores, [0.9, 0.8], rtol=1e-6)


def test_conf_is_strictly_above_and_the_best_class_wins() -> None:
    output = v8([[10, 10, 4, 4], [30, 30, 4, 4]], [[0.25, 0.1], [0.2, 0.6]])
    found = decode_v8(output, classes_count=2, conf=0.25, iou=0.7, max_det=300)
    assert found.classes.tolist() == [1]


def test_classes_filter_and_max_det() -> None:
    centres = [[k * 30 + 10, 10, 8, 8] for k in range(6)]
    scores = [[0.9 - k / 10, 0] if k % 2 else [0, 0.9 - k / 10] for k in range(6)]
    output = v8(centres, scores)
    only_zero = decode_v8(output, classes_count=2, conf=0.25, iou=0.7, max_det=300, classes=[0])
    assert only_zero.classes.tolist() == [0, 0, 0]
    top_two = decode_v8(output, classes_count=2, conf=0.25, iou=0.7, max_det=2)
    np.testing.assert_allclose(top_two.scores, [0.9, 0.8], rtol=1e-6)


def test_at_most_30000_candidates_go_into_nms() -> None:
    count = MAX_NMS + 500
    rng = np.random.default_rng(0)
    centres = np.stack(
        [np.arange(count) * 3.0, np.zeros(count), np.ones(count), np.ones(count)], axis=1
    )
    scores = rng.uniform(0.3, 1.0, size=(count, 1))
    found = decode_v8(
        v8(centres.tolist(), scores.tolist()), classes_count=1, conf=0.25, iou=0.7, max_det=count
    )
    assert len(found) == MAX_NMS  # none overlap: exactly the 30000 best survive
    assert found.scores.min() >= np.sort(scores.ravel().astype(np.float32))[-MAX_NMS]


def test_v5_multiplies_objectness_into_the_class_scores() -> None:
    rows = np.array(
        [
            [50, 50, 10, 10, 0.5, 0.9, 0.2],  # 0.45 class 0
            [80, 80, 10, 10, 0.2, 1.0, 1.0],  # objectness below conf: out before anything
            [20, 20, 10, 10, 0.6, 0.3, 0.4],  # 0.24 best: below conf after the product
        ],
        dtype=np.float32,
    )
    found = decode_v5(rows, classes_count=2, conf=0.25, iou=0.45, max_det=300)
    assert found.classes.tolist() == [0]
    np.testing.assert_allclose(found.scores, [0.45], rtol=1e-6)
    np.testing.assert_allclose(found.boxes, [[45, 45, 55, 55]])


def test_end2end_filters_then_cuts_then_filters_classes() -> None:
    rows = np.array(
        [
            [0, 0, 10, 10, 0.9, 1],
            [5, 5, 15, 15, 0.8, 0],
            [1, 1, 2, 2, 0.1, 0],
            [3, 3, 9, 9, 0.7, 1],
        ],
        dtype=np.float32,
    )
    found = decode_end2end(rows, conf=0.25, max_det=2)
    assert found.classes.tolist() == [1, 0]  # no NMS: the overlapping pair stays
    only_one = decode_end2end(rows, conf=0.25, max_det=2, classes=[1])
    assert only_one.scores.tolist() == [np.float32(0.9)]
    nonsense = np.array([[0, 0, 1, 1, 0.9, np.nan], [0, 0, 1, 1, 0.9, -3]], dtype=np.float32)
    assert len(decode_end2end(nonsense, conf=0.25, max_det=10)) == 0


def test_mask_is_cut_to_the_box_and_upsampled_like_torch() -> None:
    protos = np.zeros((2, 160, 160), dtype=np.float32)
    protos[0] = 1.0  # a positive logit everywhere: the box alone shapes the mask
    box = np.array([[160, 240, 320, 400]], dtype=np.float32)  # 40..80 × 60..100 in protos
    (mask,) = masks(np.array([[1.0, 0.0]], np.float32), protos, box, (640, 640))
    columns = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    # Half-pixel bilinear: the source column (x + 0.5) / 4 − 0.5 passes 39 at x = 158 and
    # stays below 80 up to x = 321.
    assert (columns.min(), columns.max(), rows.min(), rows.max()) == (158, 321, 238, 401)
    points = outline(mask)
    assert points is not None
    assert sorted({tuple(p) for p in points.tolist()}) == [
        (158.0, 238.0),
        (158.0, 401.0),
        (321.0, 238.0),
        (321.0, 401.0),
    ]
    assert outline(np.zeros((8, 8), bool)) is None


def same_outline(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(a, b)


def test_outlines_from_box_windows_equal_those_of_whole_masks() -> None:
    rng = np.random.default_rng(7)
    protos = rng.normal(size=(32, 160, 160)).astype(np.float32)
    coefficients = rng.normal(size=(40, 32)).astype(np.float32)
    corners = rng.uniform(-20, 660, size=(40, 2, 2)).astype(np.float32)
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    boxes[0] = [0, 0, 640, 640]  # the whole input: the window meets every edge
    boxes[1] = [300, 300, 300.5, 300.5]  # thinner than a prototype pixel
    whole = [outline(mask) for mask in masks(coefficients, protos, boxes, (640, 640))]
    windows = outlines(coefficients, protos, boxes, (640, 640))
    assert sum(points is not None for points in whole) > 30
    assert all(map(same_outline, whole, windows))
    # A size that is no whole multiple of the prototypes takes the whole-mask path.
    small = protos[:, :100, :100]
    odd = outlines(coefficients[:5], small, boxes[:5], (250, 250))
    expected = [outline(mask) for mask in masks(coefficients[:5], small, boxes[:5], (250, 250))]
    assert all(map(same_outline, expected, odd))
