"""Where a model and the approved labels of one image disagree: likely label errors, ranked.

The image is matched across classes at IoU 0.5 and the confidence thresholds (`matching`), with
every prediction (no `max_det` cut). Then, for a "confident" prediction (score >= its class's
threshold):

- **extra** — a confident prediction that overlaps no truth of any class at IoU >= 0.5: the model
  sees a defect the label lacks. Score: its confidence. `truth` is the truth it overlaps most, if
  any. (A confident prediction that overlaps a truth already taken by a better prediction is a
  duplicate, the model's problem, not the label's: no finding.)
- **wrong_class** — a confident prediction with no same-class match that overlaps an unused truth
  of another class at IoU >= 0.5. Score: its confidence.
- **loose_box** — a confident prediction matched to a truth of its class with
  0.5 <= IoU < `LOOSE_IOU`: one of the two boxes is clearly off. Score: confidence × (1 - IoU).
  None when another confident prediction of that class fits the truth at IoU >= `LOOSE_IOU`
  (the model also drew the truth's box tightly, so the truth is fine).
- **missing** — a truth that no confident prediction of any class overlaps at IoU >= 0.5: the
  label has a defect the model does not see. The evidence is how little the model sees there
  and how large the box is: score = (1 - support) × area / (area + `MISSING_SIDE`²), where
  support is the strongest prediction of any class and score near it, score × min(1, IoU / 0.5)
  (a prediction below its threshold on the box still says "something is here"). A large box
  with nothing at all on it ranks first (a model seldom misses a large defect, so the box is
  likely wrong or drawn on the wrong image); a small one ranks lower, since small defects are
  what models miss most. `prediction` is that strongest prediction, if any. A confident
  prediction that is merely off the box shows up as an "extra" with its confidence, so the pair
  is still found. A truth overlapped at IoU >= 0.5 only by confident predictions that matched
  other truths is "missing" too (with that strong support it ranks low) unless it is a duplicate:
- **duplicate** — a missed truth that overlaps another truth of its class at IoU >= 0.5, where a
  confident prediction overlapping both (IoU >= 0.5) matched that other truth and nothing is left
  to match this one: two labels for one defect. `truth` is the duplicate (the one left
  unmatched), `prediction` the prediction that matched the other truth (the other truth is not
  in the finding: it is the one that prediction was matched to by `matching`'s rule; on equal
  IoU the later truth is matched, so the earlier one is the duplicate), `iou` the prediction's
  IoU with the duplicate. Score: IoU(duplicate, other truth) × the prediction's confidence; the
  best such pair when there are several.

Findings come highest score first; on equal scores in the order of the kinds above, then of the
boxes. Scores are 0..1 and comparable across images, so a project's findings rank together.

`disagreement` sums an image up in one number for ordering a queue: 1 - 2 × (same-class matches
at IoU 0.5) / (truths + confident predictions), 0 when both are empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from defectlab.evaluation.boxes import (
    Arrays,
    Box,
    FloatArray,
    IntArray,
    Sample,
    Thresholds,
    iou_matrix,
)
from defectlab.evaluation.matching import THRESHOLDS, Scene, scene

LOOSE_IOU = 0.7
MISSING_SIDE = 32.0  # pixels: a box of this area weighs 1/2 (COCO's "small" objects are under it)
KINDS = ("extra", "wrong_class", "loose_box", "missing", "duplicate")
_MATCH_IOU = float(THRESHOLDS[0])


@dataclass(frozen=True, slots=True)
class Finding:
    """One likely label error: its kind, its ranking score (higher = more likely), the truth and
    prediction concerned (either may be None, see the module docstring) and their IoU."""

    kind: str
    score: float
    truth: Box | None
    prediction: Box | None
    iou: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": self.score,
            "truth": _box_json(self.truth),
            "prediction": _box_json(self.prediction),
            "iou": self.iou,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        try:
            if data["kind"] not in KINDS:
                raise ValueError(f"no finding kind {data['kind']!r}")
            iou = data["iou"]
            return cls(
                kind=str(data["kind"]),
                score=float(data["score"]),
                truth=_box_from_json(data["truth"]),
                prediction=_box_from_json(data["prediction"]),
                iou=None if iou is None else float(iou),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a finding: {error!r}") from error


def _box_json(box: Box | None) -> dict[str, Any] | None:
    if box is None:
        return None
    return {"box": [box.x1, box.y1, box.x2, box.y2], "label": box.label, "score": box.score}


def _box_from_json(data: Mapping[str, Any] | None) -> Box | None:
    if data is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in data["box"])
    return Box(x1, y1, x2, y2, int(data["label"]), float(data["score"]))


def _scene(
    truths: Sequence[Box], predictions: Sequence[Box], conf: float | Mapping[int, float]
) -> Scene:
    gt, dt = Arrays(truths), Arrays(predictions)
    labels: IntArray = np.union1d(gt.labels, dt.labels).astype(np.int64)
    return scene(gt, dt, labels, Thresholds(conf), None)


def findings(sample: Sample, *, conf: float | Mapping[int, float]) -> list[Finding]:
    """The likely label errors of one image, highest score first (the module docstring gives
    the rules). ValueError for a bad threshold or box, or a mapping without a predicted class."""
    matched = _scene(sample.truths, sample.predictions, conf)
    truths, predictions = list(sample.truths), list(sample.predictions)
    found: list[tuple[float, int, int, Finding]] = []

    def add(kind: str, score: float, truth: int | None, prediction: int | None) -> None:
        iou = None
        if truth is not None and prediction is not None:
            iou = float(matched.iou[prediction, truth])
        finding = Finding(
            kind,
            float(score),
            None if truth is None else truths[truth],
            None if prediction is None else predictions[prediction],
            iou,
        )
        order = prediction if prediction is not None else truth
        found.append((-finding.score, KINDS.index(kind), order or 0, finding))

    for prediction in matched.background:
        overlap = matched.iou[prediction]
        if len(overlap) and overlap.max() >= _MATCH_IOU:
            continue  # a duplicate of a better prediction
        nearest = int(np.argmax(overlap)) if len(overlap) and overlap.max() > 0 else None
        add("extra", matched.predictions.scores[prediction], nearest, prediction)
    for prediction, truth in matched.other.items():
        add("wrong_class", matched.predictions.scores[prediction], truth, prediction)
    for prediction, truth in matched.same.items():
        iou = float(matched.iou[prediction, truth])
        if iou < LOOSE_IOU and not _tight(matched, truth):
            add("loose_box", matched.predictions.scores[prediction] * (1 - iou), truth, prediction)
    pairs = _truth_iou(matched)
    for truth in matched.missed:
        duplicate = _duplicate(matched, pairs, truth)
        if duplicate is not None:
            add("duplicate", duplicate[0], truth, duplicate[1])
            continue
        support, strongest = _support(matched, truth)
        area = truths[truth].area
        add("missing", (1 - support) * area / (area + MISSING_SIDE**2), truth, strongest)
    return [entry[3] for entry in sorted(found, key=lambda e: e[:3])]


def _tight(matched: Scene, truth: int) -> bool:
    """Whether a confident prediction of the truth's class overlaps it at IoU >= LOOSE_IOU."""
    label = matched.truths.labels[truth]
    same = [p for p in matched.confident if matched.predictions.labels[p] == label]
    return bool(same) and float(matched.iou[same, truth].max()) >= LOOSE_IOU


def _truth_iou(matched: Scene) -> FloatArray:
    """IoU of every truth with every truth."""
    return iou_matrix(matched.truths.xywh, matched.truths.xywh)


def _duplicate(matched: Scene, pairs: FloatArray, truth: int) -> tuple[float, int] | None:
    """(score, prediction) when the missed `truth` duplicates another truth of its class: a
    confident prediction overlapping it at IoU >= 0.5 matched a same-class truth that overlaps
    it at IoU >= 0.5. The best such pair; None when there is none."""
    label = matched.truths.labels[truth]
    taken = {**matched.same, **matched.other}
    best: tuple[float, int] | None = None
    for prediction in matched.confident:
        other = taken.get(prediction)
        if other is None or matched.iou[prediction, truth] < _MATCH_IOU:
            continue
        if matched.truths.labels[other] != label or pairs[truth, other] < _MATCH_IOU:
            continue
        score = float(pairs[truth, other] * matched.predictions.scores[prediction])
        if best is None or score > best[0]:
            best = (score, prediction)
    return best


def _support(matched: Scene, truth: int) -> tuple[float, int | None]:
    """How strongly any prediction says "something is here": score × min(1, IoU / 0.5), the
    strongest one and its index (None when no prediction touches the truth)."""
    if len(matched.predictions) == 0:
        return 0.0, None
    overlap = matched.iou[:, truth]
    strength = matched.predictions.scores * np.minimum(1.0, overlap / _MATCH_IOU)
    best = int(np.argmax(strength))
    if strength[best] <= 0:
        return 0.0, None
    return float(strength[best]), best


def disagreement(
    truths: Sequence[Box], predictions: Sequence[Box], *, conf: float | Mapping[int, float]
) -> float:
    """0 when the confident predictions and the truths agree exactly (every one matched by
    class at IoU 0.5), 1 when nothing matches; 0 for an image with neither."""
    matched = _scene(truths, predictions, conf)
    total = len(truths) + len(matched.confident)
    if total == 0:
        return 0.0
    return 1.0 - 2 * len(matched.same) / total
