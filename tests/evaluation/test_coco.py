"""The evaluation's mAP50 and mAP50-95 equal pycocotools' COCOeval on the same boxes, to the bit.

Hand-made cases name the rules that are easy to get wrong (ties, empty images and classes, the
per-image cap of detections); hypothesis then throws many small random scenes at both, on a
coarse integer grid so that equal scores and IoUs exactly at a threshold are common.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defectlab.evaluation import Box, Sample, evaluate
from tests.evaluation.reference import coco_reference


def check(samples: Sequence[Sample], labels: Sequence[int], max_det: int = 100) -> None:
    report = evaluate(samples, labels, conf=0.25, max_det=max_det)
    reference = coco_reference(samples, labels, max_det)
    assert report.map50 == reference.map50
    assert report.map50_95 == reference.map50_95
    for label in labels:
        ours = report.classes[label]
        assert ours.ap50 == pytest.approx(reference.ap50[label], abs=1e-12)
        assert ours.ap50_95 == pytest.approx(reference.ap50_95[label], abs=1e-12)
        assert (ours.ap50 is None) == (reference.ap50[label] is None)


def box(x1: float, y1: float, x2: float, y2: float, label: int = 0, score: float = 1.0) -> Box:
    return Box(x1, y1, x2, y2, label, score)


def test_perfect_predictions_score_one() -> None:
    truths = [box(0, 0, 10, 10), box(20, 20, 40, 30, 1)]
    samples = [Sample(1, truths, [box(b.x1, b.y1, b.x2, b.y2, b.label, 0.9) for b in truths])]
    check(samples, [0, 1])
    assert evaluate(samples, [0, 1], conf=0.5).map50_95 == pytest.approx(1.0)


def test_shifted_boxes_pass_some_thresholds() -> None:
    samples = [
        Sample(1, [box(0, 0, 10, 10)], [box(1, 0, 11, 10, 0, 0.8)]),  # IoU 9/11
        Sample(2, [box(0, 0, 10, 10)], [box(0, 3, 10, 13, 0, 0.7)]),  # IoU 7/13
        Sample(3, [box(0, 0, 10, 10)], [box(0, 0, 10, 20, 0, 0.6)]),  # IoU exactly 0.5
    ]
    check(samples, [0])


def test_duplicates_are_false_positives() -> None:
    truth = box(0, 0, 10, 10)
    predictions = [box(0, 0, 10, 10, 0, 0.9), box(0, 0, 10, 10, 0, 0.95), box(1, 1, 10, 10, 0, 0.5)]
    check([Sample(1, [truth], predictions)], [0])


def test_ties_in_score_follow_image_and_input_order() -> None:
    # Equal scores: a false positive before a true positive costs precision at that recall.
    samples = [
        Sample(2, [box(0, 0, 10, 10)], [box(0, 0, 10, 10, 0, 0.5), box(50, 50, 60, 60, 0, 0.5)]),
        Sample(1, [box(0, 0, 10, 10)], [box(50, 50, 60, 60, 0, 0.5), box(0, 0, 10, 10, 0, 0.5)]),
        Sample(3, [box(0, 0, 10, 10), box(0, 0, 10, 10)], [box(0, 0, 10, 10, 0, 0.5)]),
    ]
    check(samples, [0])
    check(list(reversed(samples)), [0])


def test_equal_overlap_takes_the_later_truth() -> None:
    # One prediction equally over two truths; the second prediction can only take the first.
    truths = [box(0, 0, 10, 10), box(5, 0, 15, 10)]
    predictions = [box(2.5, 0, 12.5, 10, 0, 0.9), box(0, 0, 10, 10, 0, 0.8)]
    check([Sample(1, truths, predictions)], [0])


def test_images_without_truth_make_false_positives() -> None:
    samples = [
        Sample(1, [box(0, 0, 10, 10)], [box(0, 0, 10, 10, 0, 0.6)]),
        Sample(2, [], [box(0, 0, 10, 10, 0, 0.9)]),
        Sample(3, [], []),
    ]
    check(samples, [0])
    assert evaluate(samples, [0], conf=0.5).map50 == pytest.approx(0.5, abs=0.01)


def test_class_without_predictions_has_ap_zero_and_counts() -> None:
    samples = [Sample(1, [box(0, 0, 10, 10), box(20, 20, 30, 30, 1)], [box(0, 0, 10, 10, 0, 0.9)])]
    check(samples, [0, 1])
    report = evaluate(samples, [0, 1], conf=0.5)
    assert report.classes[1].ap50 == 0.0
    assert report.map50 == pytest.approx(0.5)


def test_class_without_truths_is_left_out() -> None:
    samples = [
        Sample(1, [box(0, 0, 10, 10)], [box(0, 0, 10, 10, 0, 0.9), box(0, 0, 9, 9, 1, 0.99)])
    ]
    check(samples, [0, 1, 2])
    report = evaluate(samples, [0, 1, 2], conf=0.5)
    assert report.classes[1].ap50 is None
    assert report.classes[2].ap50_95 is None
    assert report.map50 == pytest.approx(1.0)


def test_no_truths_at_all_gives_no_map() -> None:
    samples = [Sample(1, [], [box(0, 0, 10, 10, 0, 0.9)]), Sample(2, [], [])]
    check(samples, [0])
    assert evaluate(samples, [0], conf=0.5).map50 is None


def test_more_than_max_det_detections_in_one_image() -> None:
    truths = [box(10 * k, 0, 10 * k + 8, 8) for k in range(60)]
    predictions = [
        box(10 * (k % 60) + (k // 60), 0, 10 * (k % 60) + 8, 8, 0, round(1 - k / 300, 3))
        for k in range(150)
    ]
    samples = [Sample(1, truths, predictions), Sample(2, truths[:3], predictions[::-1])]
    check(samples, [0])
    check(samples, [0], max_det=10)
    check(samples, [0], max_det=120)


def test_one_class_only_and_labels_outside_the_list_ignored() -> None:
    samples = [
        Sample(1, [box(0, 0, 10, 10), box(0, 0, 10, 10, 7)], [box(0, 0, 10, 11, 0, 0.4)]),
        Sample(2, [box(5, 5, 20, 20)], [box(5, 5, 19, 20, 7, 0.9), box(6, 5, 20, 20, 0, 0.3)]),
    ]
    check(samples, [0])


def test_fractional_coordinates() -> None:
    samples = [
        Sample(1, [box(0.1, 0.2, 10.3, 10.7)], [box(0.3, 0.1, 10.1, 10.9, 0, 0.81)]),
        Sample(2, [box(100.25, 3.5, 140.75, 9.125)], [box(100.5, 3.5, 139.75, 9.0, 0, 0.42)]),
    ]
    check(samples, [0])


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[Sample], list[int]]:
    labels = draw(st.sampled_from([[0], [0, 1], [0, 1, 2], [3, 1]]))
    coordinate = st.integers(0, 12).map(float) | st.floats(0, 12, allow_nan=False).map(
        lambda v: round(v, 2)
    )
    score = st.sampled_from([0.1, 0.3, 0.5, 0.5, 0.9, 1.0]) | st.floats(0, 1)

    def boxes(truth: bool, most: int) -> list[Box]:
        found = []
        for _ in range(draw(st.integers(0, most))):
            x1, x2 = sorted((draw(coordinate), draw(coordinate)))
            y1, y2 = sorted((draw(coordinate), draw(coordinate)))
            label = draw(st.sampled_from([*labels, 9]))
            found.append(Box(x1, y1, x2 + 1, y2 + 1, label, 1.0 if truth else draw(score)))
        return found

    ids = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5, unique=True))
    return [Sample(i, boxes(True, 5), boxes(False, 8)) for i in ids], labels


@settings(max_examples=300)
@given(scenes())
def test_random_scenes_equal_pycocotools(scene: tuple[list[Sample], list[int]]) -> None:
    samples, labels = scene
    check(samples, labels)


@settings(max_examples=60)
@given(scenes(), st.integers(1, 4))
def test_random_scenes_with_a_small_cap_equal_pycocotools(
    scene: tuple[list[Sample], list[int]], max_det: int
) -> None:
    samples, labels = scene
    check(samples, labels, max_det)
