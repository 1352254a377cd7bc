"""`evaluate`: COCO mAP, precision / recall, the PR curve and the confusion matrix of a model.

mAP50 and mAP50-95 are pycocotools' `COCOeval` numbers (iouType "bbox", area range "all",
maxDets `max_det`, no crowd regions) for the same boxes, computed the way it computes them:

- each image and class is matched on its own (`matching.greedy`), at the ten IoU thresholds;
- a class's detections from all images are then sorted by score with a stable sort, ties in the
  order pycocotools meets them: by image id, then by their order within the image;
- precision is tp / (tp + fp + eps) as there, made non-increasing from the right, and read at
  the 101 recall points (`searchsorted`, left); past the highest recall it is 0;
- a class's AP is the mean over recall points (and thresholds); the mAP is the mean over every
  (threshold, recall point, class) cell of the classes that have ground truth, in pycocotools'
  order, so it equals `stats[0]` / `stats[1]` to the last bit. A class with truths and no
  predictions has AP 0; a class without truths is left out (pycocotools' -1) and its AP is None.
- images without ground truth count: their predictions are false positives. Boxes whose label
  is not in `labels` are ignored, as pycocotools ignores categories outside `catIds`.

One difference: pycocotools' area range "all" stops at 1e10 square pixels (a 100000-pixel
square) and ignores larger boxes; here there is no such limit.

The samples stream: they are matched `BATCH` images at a time with numpy (`batch`), then only
the predictions' classes, scores, image ids, positions and matches (about 40 bytes each) and the
truth counts are kept, never the images. 100000 images of a few boxes take about a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from defectlab.evaluation.batch import Batch, confusion, match_batch
from defectlab.evaluation.boxes import (
    RECALL_POINTS,
    BoolArray,
    FloatArray,
    IntArray,
    Sample,
    Thresholds,
    image_id,
)
from defectlab.evaluation.matching import THRESHOLDS
from defectlab.evaluation.report import ClassReport, Confusion, Report

CURVE_POINTS = 101
BATCH = 1024  # images matched together (`batch`)


class _Detections:
    """The evaluated detections of all images seen so far, kept compactly: per prediction its
    class (index into the sorted labels), score, image id, position and matches."""

    def __init__(self, classes: int) -> None:
        self.truths: IntArray = np.zeros(classes, dtype=np.int64)
        self._pieces: list[tuple[IntArray, FloatArray, IntArray, IntArray, BoolArray]] = []

    def add(self, matched: Batch, image_ids: IntArray) -> None:
        self.truths += np.bincount(matched.truth_label, minlength=len(self.truths))
        image = image_ids[matched.image]
        # Compact: ~34 bytes a prediction (class and position as int32, ten match flags).
        self._pieces.append(
            (
                matched.label.astype(np.int32),
                matched.score,
                image,
                matched.position.astype(np.int32),
                matched.matches >= 0,
            )
        )

    def of(self, label: int) -> tuple[FloatArray, BoolArray]:
        """One class's scores, highest first, and matches (thresholds, detections), in
        pycocotools' order: ties by image id, then by position in the image."""
        if len(self._pieces) > 1:
            self._pieces = [_join(self._pieces)]
        if not self._pieces:
            return np.zeros(0), np.zeros((len(THRESHOLDS), 0), dtype=np.bool_)
        labels, scores, images, positions, matched = self._pieces[0]
        mine = labels == label
        scores, images, positions = scores[mine], images[mine], positions[mine]
        order = np.lexsort((positions, images, -scores))
        return scores[order], matched[:, mine][:, order]


def _join(
    pieces: Sequence[tuple[IntArray, FloatArray, IntArray, IntArray, BoolArray]],
) -> tuple[IntArray, FloatArray, IntArray, IntArray, BoolArray]:
    return (
        np.concatenate([p[0] for p in pieces]),
        np.concatenate([p[1] for p in pieces]),
        np.concatenate([p[2] for p in pieces]),
        np.concatenate([p[3] for p in pieces]),
        np.concatenate([p[4] for p in pieces], axis=1),
    )


def evaluate(
    samples: Iterable[Sample],
    labels: Sequence[int],
    *,
    conf: float | Mapping[int, float],
    max_det: int = 100,
) -> Report:
    """Evaluate predictions against ground truth over `samples` for the classes `labels`
    (a mapping `conf` must give every one of them a threshold). ValueError for duplicate labels
    or image ids, a bad threshold or box, or `max_det` < 1."""
    label_list = [int(label) for label in labels]
    if len(set(label_list)) != len(label_list):
        raise ValueError("each label may be evaluated once")
    if isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1:
        raise ValueError(f"max_det must be a whole number, 1 or more, not {max_det!r}")
    thresholds = Thresholds(conf)
    thresholds.require(label_list)
    ordered: IntArray = np.array(sorted(label_list), dtype=np.int64)
    confs: FloatArray = np.array([thresholds.of(label) for label in ordered.tolist()])
    detections = _Detections(len(ordered))
    counts = np.zeros((len(ordered) + 1, len(ordered) + 1), dtype=np.int64)
    seen: set[int] = set()
    pending: list[Sample] = []
    ids: list[int] = []

    def run() -> None:
        matched = match_batch(pending, ordered, max_det)
        detections.add(matched, np.array(ids, dtype=np.int64))
        counts[...] += confusion(matched, confs, len(ordered))
        pending.clear()
        ids.clear()

    for sample in samples:
        if not isinstance(sample, Sample):
            raise ValueError(f"evaluate takes Samples with whole-number image ids: {sample!r}")
        number = image_id(sample.image_id)
        if number in seen:
            raise ValueError(f"image {number} appears twice")
        seen.add(number)
        pending.append(sample)
        ids.append(number)
        if len(pending) >= BATCH:
            run()
    if pending:
        run()
    # Rows and columns in the caller's order of labels, background last.
    place = [int(np.searchsorted(ordered, label)) for label in label_list] + [len(ordered)]
    in_order = counts[np.ix_(place, place)]
    return _report(len(seen), label_list, detections, thresholds, in_order)


def _report(
    images: int,
    labels: list[int],
    detections: _Detections,
    thresholds: Thresholds,
    counts: IntArray,
) -> Report:
    classes: dict[int, ClassReport] = {}
    precisions: list[FloatArray] = []
    # pycocotools' class order (sorted ids), so that the sums are the same
    for index, label in enumerate(sorted(labels)):
        scores, matched = detections.of(index)
        truths = int(detections.truths[index])
        table = _precision_table(matched, truths) if truths else None
        if table is not None:
            precisions.append(table)
        classes[label] = _class_report(scores, matched, truths, table, thresholds.of(label))
    map50 = map50_95 = None
    if precisions:
        # (thresholds, recall points, classes), flattened in that order as pycocotools does.
        cells = np.ascontiguousarray(np.stack(precisions, axis=2))
        map50 = float(np.mean(cells[0].ravel()))
        map50_95 = float(np.mean(cells.ravel()))
    confusion = Confusion(list(labels), counts.tolist())
    in_order = {label: classes[label] for label in labels}
    return Report(images, map50, map50_95, in_order, confusion)


def _precision_table(matched: BoolArray, truths: int) -> FloatArray:
    """pycocotools' interpolated precision at the 101 recall points, per IoU threshold."""
    table = np.zeros((len(THRESHOLDS), len(RECALL_POINTS)))
    detections = matched.shape[1]
    if detections == 0:
        return table
    # One IoU threshold at a time: the same arithmetic as over the whole (thresholds,
    # detections) block, with a tenth of its memory (this is the run's peak on large sets).
    for t in range(len(THRESHOLDS)):
        tp = np.cumsum(matched[t]).astype(float)
        fp = np.arange(1, detections + 1, dtype=float) - tp
        recall = tp / truths
        precision = tp / (fp + tp + np.spacing(1))
        del fp
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, RECALL_POINTS, side="left")
        inside = at < detections
        table[t, inside] = envelope[at[inside]]
    return table


def _class_report(
    scores: FloatArray,
    matched: BoolArray,
    truths: int,
    table: FloatArray | None,
    conf: float,
) -> ClassReport:
    hits = matched[0] if matched.shape[1] else np.zeros(0, dtype=np.bool_)
    confident = scores >= conf
    predicted = int(confident.sum())
    correct = int(hits[confident].sum())
    precision = correct / predicted if predicted else None
    recall = correct / truths if truths else None
    best_conf, best_f1, curve = _curve(scores, hits, truths)
    return ClassReport(
        truths=truths,
        predictions=len(scores),
        ap50=None if table is None else float(np.mean(table[0])),
        ap50_95=None if table is None else float(np.mean(table)),
        precision=precision,
        recall=recall,
        conf=conf,
        best_conf=best_conf,
        best_f1=best_f1,
        curve=curve,
    )


def _curve(
    scores: FloatArray, hits: BoolArray, truths: int
) -> tuple[float | None, float | None, list[tuple[float, float, float]]]:
    """The F1-best threshold and the PR curve at IoU 0.5: one operating point per distinct
    score (every prediction at or above it kept)."""
    if not truths:
        return None, None, []
    if len(scores) == 0:
        return None, 0.0, []
    tp = np.cumsum(hits)
    # The last detection of each run of equal scores: thresholds between distinct scores.
    ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    kept_tp = tp[ends].astype(float)
    kept_all = (ends + 1).astype(float)
    recall = kept_tp / truths
    precision = kept_tp / kept_all
    f1 = 2 * kept_tp / (truths + kept_all)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold among equals
    best_conf = float(scores[ends[best]]) if kept_tp[best] > 0 else None
    points = np.unique(np.round(np.linspace(0, len(ends) - 1, CURVE_POINTS)).astype(np.int64))
    curve = [
        (float(recall[k]), float(precision[k]), float(scores[ends[k]])) for k in points.tolist()
    ]
    return best_conf, float(f1[best]), curve
