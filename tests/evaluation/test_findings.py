"""Label-error findings of one image, their ranking, and the disagreement score."""

from __future__ import annotations

import json

import pytest

from defectlab.evaluation import LOOSE_IOU, Box, Finding, Sample, disagreement, findings

A, B = 1, 2


def kinds(found: list[Finding]) -> list[str]:
    return [f.kind for f in found]


def test_an_image_where_model_and_label_agree_has_no_findings() -> None:
    truths = [Box(0, 0, 10, 10, A), Box(20, 20, 40, 40, B)]
    predictions = [Box(0, 0, 10, 10, A, 0.9), Box(21, 20, 40, 40, B, 0.8), Box(0, 0, 9, 9, A, 0.1)]
    assert findings(Sample(1, truths, predictions), conf=0.5) == []
    assert disagreement(truths, predictions, conf=0.5) == 0.0


def test_each_kind_with_its_boxes_and_score() -> None:
    t_wrong, t_loose, t_missing = Box(0, 0, 10, 10, A), Box(20, 0, 30, 10, A), Box(40, 0, 80, 40, B)
    p_wrong = Box(0, 0, 10, 10, B, 0.9)
    p_loose = Box(20, 0, 30, 16, A, 0.8)  # IoU 10/16
    p_extra = Box(200, 200, 220, 220, A, 0.7)
    p_dup = Box(20, 0, 30, 15, A, 0.6)  # a duplicate of p_loose on t_loose: no finding
    sample = Sample(1, [t_wrong, t_loose, t_missing], [p_wrong, p_loose, p_extra, p_dup])
    found = findings(sample, conf=0.5)
    assert kinds(found) == ["wrong_class", "extra", "missing", "loose_box"]
    wrong, extra, missing, loose = found
    assert (wrong.truth, wrong.prediction, wrong.iou, wrong.score) == (t_wrong, p_wrong, 1.0, 0.9)
    assert (extra.truth, extra.prediction, extra.iou, extra.score) == (None, p_extra, None, 0.7)
    assert (missing.truth, missing.prediction, missing.iou) == (t_missing, None, None)
    assert missing.score == pytest.approx(1600 / (1600 + 32**2))
    assert loose.iou == pytest.approx(10 / 16)
    assert loose.score == pytest.approx(0.8 * (1 - 10 / 16))


def test_a_tight_enough_box_is_not_loose() -> None:
    truth = Box(0, 0, 100, 100, A)
    tight = Box(0, 0, 100, 100 / LOOSE_IOU - 1, A, 0.9)
    loose = Box(0, 0, 100, 100 / LOOSE_IOU + 1, A, 0.9)
    assert findings(Sample(1, [truth], [tight]), conf=0.5) == []
    assert kinds(findings(Sample(1, [truth], [loose]), conf=0.5)) == ["loose_box"]


def test_missing_truths_rank_by_size_and_by_what_the_model_sees_there() -> None:
    large, small = Box(0, 0, 100, 100, A), Box(200, 0, 208, 8, A)
    seen = Box(300, 0, 400, 100, A)
    hint = Box(300, 0, 400, 100, A, 0.4)  # under the threshold, but on the box
    found = findings(Sample(1, [small, seen, large], [hint]), conf=0.5)
    assert kinds(found) == ["missing"] * 3
    assert [f.truth for f in found] == [large, seen, small]
    assert found[1].prediction == hint
    assert found[1].iou == 1.0
    assert found[1].score == pytest.approx(0.6 * 10_000 / (10_000 + 1024))
    assert found[2].score < 0.1


def test_a_confident_prediction_of_another_class_covers_a_truth_it_is_not_missing() -> None:
    sample = Sample(1, [Box(0, 0, 10, 10, A)], [Box(0, 0, 10, 10, B, 0.95)])
    assert kinds(findings(sample, conf=0.5)) == ["wrong_class"]


def test_an_off_box_shows_as_extra_and_missing() -> None:
    truth = Box(0, 0, 40, 40, A)
    off = Box(20, 20, 60, 60, A, 0.9)  # IoU 1/7
    found = findings(Sample(1, [truth], [off]), conf=0.5)
    assert kinds(found) == ["extra", "missing"]
    assert found[0].truth == truth
    assert found[0].iou == pytest.approx(1 / 7)
    assert found[1].prediction == off


def test_a_threshold_per_class_must_name_every_predicted_class() -> None:
    sample = Sample(1, [Box(0, 0, 10, 10, A)], [Box(0, 0, 10, 10, B, 0.6)])
    assert kinds(findings(sample, conf={B: 0.7})) == ["missing"]
    assert kinds(findings(sample, conf={B: 0.5})) == ["wrong_class"]
    with pytest.raises(ValueError):
        findings(sample, conf={A: 0.5})
    with pytest.raises(ValueError):
        findings(sample, conf=2.0)


def test_findings_round_trip_through_json() -> None:
    sample = Sample(1, [Box(0, 0, 10, 10, A), Box(50, 50, 60, 60, B)], [Box(0, 0, 10, 10, B, 0.8)])
    for finding in findings(sample, conf=0.5):
        assert (
            Finding.from_json(json.loads(json.dumps(finding.to_json(), allow_nan=False))) == finding
        )
    with pytest.raises(ValueError):
        Finding.from_json(
            {"kind": "nonsense", "score": 1, "truth": None, "prediction": None, "iou": None}
        )


def test_disagreement_between_zero_and_one() -> None:
    truth = [Box(0, 0, 10, 10, A), Box(20, 0, 30, 10, A)]
    assert disagreement([], [], conf=0.5) == 0.0
    assert disagreement(truth, [], conf=0.5) == 1.0
    assert disagreement([], [Box(0, 0, 10, 10, A, 0.9)], conf=0.5) == 1.0
    assert disagreement([], [Box(0, 0, 10, 10, A, 0.4)], conf=0.5) == 0.0
    assert disagreement(truth, [Box(0, 0, 10, 10, B, 0.9)], conf=0.5) == 1.0
    one_of_two = disagreement(truth, [Box(0, 0, 10, 10, A, 0.9)], conf=0.5)
    assert one_of_two == pytest.approx(1 - 2 / 3)


def test_two_labels_for_one_defect_show_as_a_duplicate() -> None:
    first, second = Box(0, 0, 100, 100, A), Box(0, 0, 100, 100, A)
    prediction = Box(0, 0, 100, 100, A, 0.95)
    found = findings(Sample(1, [first, second], [prediction]), conf=0.5)
    assert kinds(found) == ["duplicate"]
    # The prediction matched the later truth (pycocotools' rule on equal IoU).
    assert found[0].truth is first and found[0].prediction is prediction
    assert found[0].score == pytest.approx(0.95) and found[0].iou == 1.0
    assert json.loads(json.dumps(found[0].to_json()))["kind"] == "duplicate"
    assert Finding.from_json(found[0].to_json()) == found[0]


def test_a_truth_covered_only_by_a_prediction_matched_elsewhere_is_reported() -> None:
    # The two truths overlap the prediction at IoU >= 0.5 but each other at IoU < 0.5.
    left, right = Box(0, 0, 100, 100, A), Box(40, 0, 140, 100, A)  # IoU 60/140
    prediction = Box(20, 0, 120, 100, A, 0.9)  # IoU 80/120 with each
    found = findings(Sample(1, [left, right], [prediction]), conf=0.5)
    assert kinds(found) == ["loose_box", "missing"]  # matched to `right` at IoU 2/3
    assert found[1].truth is left and found[1].prediction is prediction
    big = left
    # A truth of another class under the prediction's match is "missing", not "duplicate".
    other = Box(0, 0, 100, 100, B)
    found = findings(Sample(1, [big, other], [Box(0, 0, 100, 100, A, 0.9)]), conf=0.5)
    assert kinds(found) == ["missing"] and found[0].truth is other


def test_no_loose_box_when_a_tight_confident_prediction_fits_the_truth() -> None:
    truth = Box(0, 0, 100, 100, A)
    loose, tight = Box(0, 0, 100, 160, A, 0.95), Box(0, 0, 100, 100, A, 0.9)
    assert findings(Sample(1, [truth], [loose, tight]), conf=0.5) == []
    # Below the threshold the tight one says nothing: the loose box is reported.
    assert kinds(findings(Sample(1, [truth], [loose, tight]), conf=0.92)) == ["loose_box"]


def test_boxes_from_numpy_numbers_become_plain_numbers_and_json() -> None:
    import numpy as np

    truth = Box(np.float32(0), np.float32(0), np.float32(10), np.float32(10), np.int64(A))
    prediction = Box(
        np.int64(40), np.float64(0), np.float32(80.5), np.int32(40), A, np.float32(0.5)
    )
    for box in (truth, prediction):
        assert all(type(v) is float for v in (box.x1, box.y1, box.x2, box.y2, box.score))
        assert type(box.label) is int
    found = findings(Sample(np.int64(1), [truth], [prediction]), conf=0.25)
    assert kinds(found) == ["extra", "missing"]
    text = json.dumps([f.to_json() for f in found])  # failed on numpy numbers
    assert [Finding.from_json(f) for f in json.loads(text)] == found
    for bad in (True, np.bool_(True), 1.0, "1"):
        with pytest.raises(ValueError):
            Box(0, 0, 1, 1, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Box(0, 0, 10**400, 1, A)
