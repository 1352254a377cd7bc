"""Precision / recall at a threshold, the F1-best threshold, the PR curve, the confusion matrix,
the report's JSON form and the mistakes a caller can make."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator

import numpy as np
import pytest

from defectlab.evaluation import IOU_THRESHOLDS, Box, Report, Sample, evaluate, shape_box, top_score
from defectlab.geometry import Shape

A, B = 1, 2


def scene() -> list[Sample]:
    """Truths t0 A, t1 B, t2 A, t3 B in a row; predictions (conf 0.5): one right (p0 on t0),
    one of the wrong class (p1, A on the B truth t1), one over nothing (p2), one below the
    threshold (p3 on t2, so t2 is missed), one right for B (p4 on t3), a duplicate (p5 on t0)."""
    truths = [
        Box(0, 0, 10, 10, A),
        Box(20, 0, 30, 10, B),
        Box(40, 0, 50, 10, A),
        Box(60, 0, 70, 10, B),
    ]
    predictions = [
        Box(0, 0, 10, 10, A, 0.9),
        Box(20, 0, 30, 10, A, 0.8),
        Box(80, 0, 90, 10, B, 0.7),
        Box(40, 0, 50, 10, A, 0.3),
        Box(60, 0, 70, 10, B, 0.95),
        Box(0, 0, 10, 9, A, 0.6),
    ]
    return [Sample(7, truths, predictions)]


def test_the_confusion_matrix_counts_each_box_once() -> None:
    confusion = evaluate(scene(), [A, B], conf=0.5).confusion
    assert confusion.labels == [A, B]
    assert confusion.background == 2
    #                        true A, true B, background
    assert confusion.counts == [
        [1, 1, 1],  # predicted A: p0 right, p1 on a B truth, p5 a duplicate
        [0, 1, 1],  # predicted B: p4 right, p2 over nothing
        [1, 0, 0],  # missed: t2 (its prediction is under the threshold)
    ]


def test_a_threshold_per_class_changes_what_counts() -> None:
    report = evaluate(scene(), [A, B], conf={A: 0.25, B: 0.5})
    assert report.confusion.counts[0] == [2, 1, 1]
    assert report.confusion.counts[2] == [0, 0, 0]
    assert report.classes[A].precision == pytest.approx(2 / 4)
    assert report.classes[A].recall == 1.0
    assert report.classes[A].conf == 0.25


def test_precision_and_recall_at_the_threshold() -> None:
    report = evaluate(scene(), [A, B], conf=0.5)
    a, b = report.classes[A], report.classes[B]
    assert (a.truths, a.predictions) == (2, 4)
    assert a.precision == pytest.approx(1 / 3)
    assert a.recall == pytest.approx(1 / 2)
    assert (b.precision, b.recall) == (0.5, 0.5)


def test_best_threshold_and_curve() -> None:
    a = evaluate(scene(), [A, B], conf=0.5).classes[A]
    # At 0.9: 1 of 1 right, F1 2/3; at 0.3 both truths found with 2 wrong, F1 2/3 again: the
    # higher threshold wins the tie.
    assert a.best_conf == 0.9
    assert a.best_f1 == pytest.approx(2 / 3)
    expected = [(0.5, 1.0, 0.9), (0.5, 0.5, 0.8), (0.5, 1 / 3, 0.6), (1.0, 0.5, 0.3)]
    assert [pytest.approx(point) for point in expected] == a.curve


def test_a_long_curve_is_thinned_to_101_points_keeping_the_ends() -> None:
    rnd = random.Random(3)
    samples = [
        Sample(k, [Box(0, 0, 10, 10, A)], [Box(0, 0, 10, rnd.choice([10, 30]), A, (k + 1) / 1001)])
        for k in range(1000)
    ]
    a = evaluate(samples, [A], conf=0.5).classes[A]
    assert len(a.curve) == 101
    assert a.curve[0][2] == pytest.approx(1000 / 1001)
    assert a.curve[-1][2] == pytest.approx(1 / 1001)
    confs = [c for _, _, c in a.curve]
    assert confs == sorted(confs, reverse=True)
    everything = evaluate(samples, [A], conf=0.0).classes[A]
    assert (a.curve[-1][0], a.curve[-1][1]) == (everything.recall, everything.precision)


def test_classes_without_truths_or_predictions() -> None:
    samples = [Sample(1, [Box(0, 0, 10, 10, A)], [Box(50, 50, 60, 60, B, 0.9)])]
    report = evaluate(samples, [A, B, 3], conf=0.5)
    a, b, c = report.classes[A], report.classes[B], report.classes[3]
    assert (a.ap50, a.precision, a.recall, a.best_conf, a.best_f1, a.curve) == (
        0.0,
        None,
        0.0,
        None,
        0.0,
        [],
    )
    assert (b.ap50, b.precision, b.recall, b.best_conf, b.best_f1, b.curve) == (
        None,
        0.0,
        None,
        None,
        None,
        [],
    )
    assert (c.truths, c.predictions, c.precision, c.recall) == (0, 0, None, None)
    assert report.map50 == 0.0
    assert list(report.classes) == [A, B, 3]


def test_no_images_and_no_labels() -> None:
    empty = evaluate([], [A], conf=0.5)
    assert (empty.images, empty.map50, empty.map50_95) == (0, None, None)
    assert empty.confusion.counts == [[0, 0], [0, 0]]
    nothing = evaluate(scene(), [], conf=0.5)
    assert nothing.classes == {}
    assert nothing.confusion.counts == [[0]]


def test_report_round_trips_through_strict_json() -> None:
    report = evaluate([*scene(), Sample(8, [], [])], [A, B, 3], conf={A: 0.4, B: 0.5, 3: 0.1})
    text = json.dumps(report.to_json(), allow_nan=False)
    again = Report.from_json(json.loads(text))
    assert again == report
    assert again.to_json() == report.to_json()


@pytest.mark.parametrize(
    "data", [{}, {"images": 1}, [], {**evaluate([], [A], conf=0.5).to_json(), "classes": 3}]
)
def test_from_json_refuses_what_is_not_a_report(data: object) -> None:
    with pytest.raises(ValueError):
        Report.from_json(data)  # type: ignore[arg-type]


def test_from_json_refuses_nan_and_classes_unlike_the_confusion() -> None:
    good = evaluate(scene(), [A, B], conf=0.5).to_json()
    Report.from_json(good)
    changes = [
        lambda d: d.update(map50=math.nan),
        lambda d: d["classes"]["1"].update(conf=math.nan),
        lambda d: d["classes"]["1"].update(ap50="inf"),
        lambda d: d["classes"]["1"]["curve"].append([math.nan, 1.0, 0.5]),
        lambda d: d["classes"].pop("2"),
        lambda d: d["classes"].update({"3": d["classes"]["1"]}),
        lambda d: d["confusion"].update(labels=[1, 3]),
    ]
    for change in changes:
        data = json.loads(json.dumps(good))
        change(data)
        with pytest.raises(ValueError):
            Report.from_json(data)


def test_evaluate_consumes_a_generator_once() -> None:
    def stream() -> Iterator[Sample]:
        for k in range(2000):
            yield Sample(k, [Box(0, 0, 10, 10, k % 2)], [Box(1, 0, 10, 10, k % 2, 0.5)])

    report = evaluate(stream(), [0, 1], conf=0.5)
    assert report.images == 2000
    assert report.map50 == pytest.approx(1.0)
    assert report.classes[0].truths == 1000


@pytest.mark.parametrize(
    ("labels", "conf", "max_det"),
    [
        ([A, A], 0.5, 100),
        ([A, B], {A: 0.5}, 100),
        ([A], 1.5, 100),
        ([A], -0.1, 100),
        ([A], math.nan, 100),
        ([A], {A: math.inf}, 100),
        ([A], 0.5, 0),
        ([A], 0.5, True),
    ],
)
def test_evaluate_refuses_bad_arguments(labels: list[int], conf: object, max_det: int) -> None:
    with pytest.raises(ValueError):
        evaluate(scene(), labels, conf=conf, max_det=max_det)  # type: ignore[arg-type]


def test_evaluate_refuses_an_image_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        evaluate(scene() + scene(), [A], conf=0.5)
    with pytest.raises(ValueError, match="twice"):
        evaluate([Sample(1, [], []), Sample(np.int64(1), [], [])], [A], conf=0.5)


def test_evaluate_takes_numpy_image_ids() -> None:
    samples = [Sample(np.int64(k), [Box(0, 0, 10, 10, A)], []) for k in range(3)]
    report = evaluate(samples, [A], conf=0.5)
    assert (report.images, report.classes[A].truths) == (3, 3)


@pytest.mark.parametrize(
    "sample",
    [
        Sample("a", [], []),  # type: ignore[arg-type]
        Sample(True, [], []),  # type: ignore[arg-type]
        Sample(np.bool_(True), [], []),  # type: ignore[arg-type]
        Sample(1.0, [], []),  # type: ignore[arg-type]
        Sample(1, [(0, 0, 1, 1)], []),  # type: ignore[list-item]
        Sample(1, [], [Box(0, 0, 1, 1, A), "box"]),  # type: ignore[list-item]
        (1, [], []),
    ],
)
def test_evaluate_refuses_what_is_not_a_sample_of_boxes(sample: object) -> None:
    with pytest.raises(ValueError):
        evaluate([sample], [A], conf=0.5)  # type: ignore[list-item]


@pytest.mark.parametrize(
    "args",
    [
        (10, 0, 0, 10, A, 1.0),
        (0, 0, math.nan, 10, A, 1.0),
        (0, 0, 10, math.inf, A, 1.0),
        (0, 0, 10, 10, A, 1.5),
        (0, 0, 10, 10, True, 1.0),
        (0, 0, 10, 10, 1.5, 1.0),
        ("0", 0, 10, 10, A, 1.0),
    ],
)
def test_a_box_refuses_bad_values(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        Box(*args)  # type: ignore[arg-type]


def test_shape_box_bounds_every_kind_of_shape() -> None:
    assert shape_box(Shape.box(5, 6, 1, 2, label=0), A) == Box(1, 2, 5, 6, A)
    polygon = Shape.polygon([[3, 1], [9, 4], [2, 8]], label=0)
    assert shape_box(polygon, B, 0.4) == Box(2, 1, 9, 8, B, 0.4)
    point = Shape("points", ((4, 4),), 0)
    assert shape_box(point, A).area == 0


def test_top_score() -> None:
    assert top_score([]) is None
    assert top_score([Box(0, 0, 1, 1, A, 0.2), Box(0, 0, 1, 1, B, 0.7)]) == 0.7


def test_iou_thresholds_are_cocos() -> None:
    assert len(IOU_THRESHOLDS) == 10
    assert IOU_THRESHOLDS[0] == 0.5
    assert IOU_THRESHOLDS[-1] == pytest.approx(0.95)
