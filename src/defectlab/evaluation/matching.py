"""How one image's predictions are matched to its ground truth.

Same class, COCO's way (`greedy`): per class, the predictions sorted by score, highest first, with
a stable sort (ties keep their input order) and cut to `max_det`; each in turn takes the unmatched
truth it overlaps most with IoU >= the threshold (on equal IoU the later truth, as pycocotools'
loop does), at every IoU threshold independently.

Across classes (`Scene`), at IoU 0.5 and the confidence thresholds, for the confusion matrix,
the findings and the disagreement score:

1. a confident prediction keeps its same-class match from step one (a true positive);
2. the confident predictions left, in score order (ties: input order), each take the unused truth
   *of another class* they overlap most with IoU >= 0.5 (on equal IoU the earlier truth): a
   confusion between classes;
3. a confident prediction still unmatched is a false positive (background); a truth used by
   neither step is missed.

Every truth is used at most once, so each truth counts once in its class's column of the
confusion matrix and each confident prediction once in its class's row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectlab.evaluation.boxes import (
    IOU_THRESHOLDS,
    Arrays,
    FloatArray,
    IntArray,
    Thresholds,
    iou_matrix,
)

THRESHOLDS: FloatArray = np.array(IOU_THRESHOLDS, dtype=np.float64)
# pycocotools caps a threshold just under 1 so that a perfect overlap still matches at 1.0.
CAPS: FloatArray = np.minimum(THRESHOLDS, 1 - 1e-10)


def greedy(iou: FloatArray) -> IntArray:
    """COCO's matching of detections (rows, best score first) to truths (columns): for each IoU
    threshold, the column each row took, or -1. Shape (thresholds, rows)."""
    rows, columns = iou.shape
    taken: IntArray = np.full((len(CAPS), rows), -1, dtype=np.int64)
    if rows == 0 or columns == 0:
        return taken
    candidates = iou >= CAPS[0]
    if candidates.sum(axis=0).max() <= 1 and candidates.sum(axis=1).max() <= 1:
        # No truth is wanted by two detections and no detection wants two truths: nothing
        # competes, so each detection takes its one candidate where the overlap is enough.
        wanting, wanted = np.nonzero(candidates)
        hit = iou[wanting, wanted][None, :] >= CAPS[:, None]
        taken[:, wanting] = np.where(hit, wanted[None, :], -1)
        return taken
    used = np.zeros((len(CAPS), columns), dtype=np.bool_)
    flipped = slice(None, None, -1)
    for row in range(rows):
        overlap = np.where(used, -1.0, iou[row][None, :])  # (thresholds, columns)
        # The last column among the best: pycocotools replaces its match on an equal IoU.
        last = columns - 1 - np.argmax(overlap[:, flipped], axis=1)
        best = overlap[np.arange(len(CAPS)), last]
        hit = best >= CAPS
        taken[hit, row] = last[hit]
        used[hit, last[hit]] = True
    return taken


@dataclass(frozen=True, slots=True)
class ClassMatch:
    """One class in one image: which predictions were kept (indices into the image's
    predictions, best score first) and what each matched at every threshold (indices into the
    image's truths, or -1)."""

    label: int
    truths: IntArray
    kept: IntArray
    matches: IntArray  # (thresholds, kept)


def kept_order(scores: FloatArray, indices: IntArray, max_det: int | None) -> IntArray:
    """`indices` sorted by score, highest first, stably (ties keep input order), cut to
    `max_det` as pycocotools cuts each image's detections of a class."""
    order = indices[np.argsort(-scores[indices], kind="mergesort")]
    return order if max_det is None else order[:max_det]


def match_classes(
    truths: Arrays,
    predictions: Arrays,
    iou: FloatArray,
    labels: IntArray,
    max_det: int | None,
) -> list[ClassMatch]:
    """COCO's same-class matching for every class of `labels` present in the image."""
    present = set(truths.labels.tolist()) | set(predictions.labels.tolist())
    result = []
    for label in sorted(present & set(labels.tolist())):
        gt = np.flatnonzero(truths.labels == label)
        dt = kept_order(predictions.scores, np.flatnonzero(predictions.labels == label), max_det)
        local = greedy(iou[np.ix_(dt, gt)])
        matches = np.where(local >= 0, gt[np.maximum(local, 0)] if len(gt) else -1, -1)
        result.append(ClassMatch(int(label), gt, dt, matches.astype(np.int64)))
    return result


@dataclass(frozen=True, slots=True)
class Scene:
    """One image matched across classes at IoU 0.5 and the confidence thresholds (the module
    docstring gives the rule). Indices are into the image's truths and predictions."""

    truths: Arrays
    predictions: Arrays
    iou: FloatArray  # (predictions, truths)
    same: dict[int, int]  # confident prediction -> truth of its class (a true positive)
    other: dict[int, int]  # confident prediction -> truth of another class
    background: list[int]  # confident predictions that matched nothing
    missed: list[int]  # truths no confident prediction took
    confident: list[int]  # the confident kept predictions, best score first
    classes: list[ClassMatch]


def scene(
    truths: Arrays,
    predictions: Arrays,
    labels: IntArray,
    conf: Thresholds,
    max_det: int | None,
) -> Scene:
    iou = iou_matrix(predictions.xywh, truths.xywh)
    classes = match_classes(truths, predictions, iou, labels, max_det)
    same: dict[int, int] = {}
    kept: list[int] = []
    for match in classes:
        if len(match.kept) == 0:
            continue
        threshold = conf.of(match.label)
        for position, index in enumerate(match.kept.tolist()):
            if predictions.scores[index] >= threshold:
                kept.append(index)
                if match.matches[0, position] >= 0:
                    same[index] = int(match.matches[0, position])
    confident = sorted(kept, key=lambda k: (-predictions.scores[k], k))
    # Truths of classes not evaluated are not there at all: neither taken nor missed.
    evaluated = set(labels.tolist())
    used = set(same.values())
    used.update(t for t, label in enumerate(truths.labels.tolist()) if label not in evaluated)
    other: dict[int, int] = {}
    background: list[int] = []
    for index in confident:
        if index in same:
            continue
        truth = _other_class(iou[index], truths.labels, predictions.labels[index], used)
        if truth is None:
            background.append(index)
        else:
            other[index] = truth
            used.add(truth)
    missed = [t for t in range(len(truths)) if t not in used]
    return Scene(truths, predictions, iou, same, other, background, missed, confident, classes)


def _other_class(
    overlap: FloatArray, truth_labels: IntArray, label: int, used: set[int]
) -> int | None:
    best, choice = THRESHOLDS[0], None
    for truth in np.flatnonzero((overlap >= THRESHOLDS[0]) & (truth_labels != label)).tolist():
        if truth not in used and (choice is None or overlap[truth] > best):
            best, choice = overlap[truth], truth
    return choice
