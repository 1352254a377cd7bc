"""The rules of `matching`, applied to many images at once with numpy.

`evaluate` meets images in batches: all their boxes become flat columns, and the matching of
every (image, class) runs in a few array operations. Where nothing competes (no truth wanted by
two predictions at IoU >= 0.5, no prediction wanting two truths) the greedy matching has only one
possible outcome and is read off directly; the (image, class) groups or images where something
does compete go through `matching.greedy` or the same step-by-step rule, one at a time. The
result is the same as matching each image on its own (tests/evaluation check both against
pycocotools and against `matching.scene`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from defectlab.evaluation.boxes import Box, FloatArray, IntArray, Sample, iou_matrix
from defectlab.evaluation.matching import CAPS, THRESHOLDS, greedy


def _columns(samples: Sequence[Sample], truths: bool) -> tuple[IntArray, FloatArray]:
    """(image index, position in the image, label) and (x, y, w, h, score) for every box."""
    rows: list[tuple[int, int, int, float, float, float, float, float]] = []
    for image, sample in enumerate(samples):
        boxes = sample.truths if truths else sample.predictions
        if not all(isinstance(b, Box) for b in boxes):
            raise ValueError("truths and predictions must be Box objects")
        rows.extend(
            (image, position, b.label, b.x1, b.y1, b.x2, b.y2, b.score)
            for position, b in enumerate(boxes)
        )
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 8)
    ids = table[:, :3].astype(np.int64)
    values = np.empty((len(rows), 5))
    values[:, :2] = table[:, 3:5]
    values[:, 2:4] = table[:, 5:7] - table[:, 3:5]
    values[:, 4] = table[:, 7]
    return ids, values


def _pair_iou(dt: FloatArray, gt: FloatArray) -> FloatArray:
    """IoU of row k of `dt` with row k of `gt`, with `iou_matrix`'s arithmetic."""
    w = np.minimum(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
    inter = w * h
    union = (dt[:, 2] * dt[:, 3] + gt[:, 2] * gt[:, 3]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((w > 0) & (h > 0), inter / np.where(union > 0, union, 1.0), 0.0)
    return np.asarray(iou, dtype=np.float64)


def _pairs(left: IntArray, right_sorted: IntArray) -> tuple[IntArray, IntArray]:
    """Every (i, j) with left[i] == right_sorted[j]: j indexes the sorted array."""
    lo = np.searchsorted(right_sorted, left, side="left")
    count = np.searchsorted(right_sorted, left, side="right") - lo
    first = np.repeat(np.arange(len(left)), count)
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return first, np.repeat(lo, count) + offsets


def _groups_in(keys: IntArray, values: IntArray) -> IntArray:
    return np.unique(values[np.isin(values, keys)]) if len(keys) else np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class Batch:
    """Matched boxes of a batch. Truths: `truth_label` (index into the sorted labels) per
    evaluated truth. Kept predictions: label index, score, image index, position and the
    evaluated truth (index into the truth arrays) each matched per threshold, or -1."""

    truth_label: IntArray
    truth_image: IntArray
    truth_box: FloatArray
    label: IntArray
    score: FloatArray
    image: IntArray
    position: IntArray
    box: FloatArray
    matches: IntArray  # (thresholds, kept predictions)


def match_batch(samples: Sequence[Sample], labels: IntArray, max_det: int) -> Batch:
    """COCO's same-class matching (`matching.greedy`) of every image of `samples` for the
    classes `labels` (sorted, unique)."""
    t_ids, t_val = _columns(samples, truths=True)
    p_ids, p_val = _columns(samples, truths=False)
    t_in = np.isin(t_ids[:, 2], labels)
    p_in = np.isin(p_ids[:, 2], labels)
    t_ids, t_val, p_ids, p_val = t_ids[t_in], t_val[t_in], p_ids[p_in], p_val[p_in]
    size = max(len(labels), 1)
    t_label = np.searchsorted(labels, t_ids[:, 2])
    p_label = np.searchsorted(labels, p_ids[:, 2])
    t_key = t_ids[:, 0] * size + t_label
    p_key = p_ids[:, 0] * size + p_label
    # Predictions by (image, class), best score first, ties in input order; cut to max_det.
    order = np.lexsort((p_ids[:, 1], -p_val[:, 4], p_key))
    sorted_keys = p_key[order]
    starts: IntArray = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]).astype(np.int64))
    kept = order[(np.arange(len(order)) - first) < max_det]
    k_key = p_key[kept]
    t_order = np.argsort(t_key, kind="stable")  # truths by (image, class), in input order
    pair_dt, pair_sorted = _pairs(k_key, t_key[t_order])
    pair_gt = t_order[pair_sorted]
    iou = _pair_iou(p_val[kept][pair_dt], t_val[pair_gt])
    matches = np.full((len(THRESHOLDS), len(kept)), -1, dtype=np.int64)
    candidate = iou >= CAPS[0]
    wanting = np.bincount(pair_dt[candidate], minlength=len(kept))
    wanted = np.bincount(pair_gt[candidate], minlength=len(t_key))
    hard = np.union1d(k_key[wanting > 1], t_key[wanted > 1])
    easy = candidate & ~np.isin(k_key[pair_dt], hard)
    hit = iou[easy][None, :] >= CAPS[:, None]
    matches[:, pair_dt[easy]] = np.where(hit, pair_gt[easy][None, :], -1)
    for key in hard.tolist():
        dt = np.flatnonzero(k_key == key)  # already best score first
        gt = t_order[np.searchsorted(t_key[t_order], key) :][: int(np.sum(t_key == key))]
        local = greedy(iou_matrix(p_val[kept[dt], :4], t_val[gt, :4]))
        matches[:, dt] = np.where(local >= 0, gt[np.maximum(local, 0)], -1)
    return Batch(
        truth_label=t_label,
        truth_image=t_ids[:, 0],
        truth_box=t_val[:, :4],
        label=p_label[kept],
        score=p_val[kept, 4],
        image=p_ids[kept, 0],
        position=p_ids[kept, 1],
        box=p_val[kept, :4],
        matches=matches,
    )


def confusion(batch: Batch, conf: FloatArray, size: int) -> IntArray:
    """The confusion counts of a batch (`matching`'s rule), rows and columns by label index,
    `size` = background; `conf` the threshold per label index."""
    counts = np.zeros((size + 1, size + 1), dtype=np.int64)
    confident = batch.score >= conf[batch.label]
    same = confident & (batch.matches[0] >= 0)
    np.add.at(counts, (batch.label[same], batch.truth_label[batch.matches[0][same]]), 1)
    used = np.zeros(len(batch.truth_label), dtype=np.bool_)
    used[batch.matches[0][same]] = True
    rest = np.flatnonzero(confident & (batch.matches[0] < 0))
    taken = _other_class(batch, rest, used)
    crossed = taken >= 0
    np.add.at(counts, (batch.label[rest[crossed]], batch.truth_label[taken[crossed]]), 1)
    counts[:size, size] += np.bincount(batch.label[rest[~crossed]], minlength=size)
    used[taken[crossed]] = True
    counts[size, :size] += np.bincount(batch.truth_label[~used], minlength=size)
    return counts


def _other_class(batch: Batch, rest: IntArray, used: np.ndarray) -> IntArray:
    """For each prediction of `rest`, the unused truth of another class it takes, or -1."""
    taken = np.full(len(rest), -1, dtype=np.int64)
    if len(rest) == 0 or len(batch.truth_label) == 0:
        return taken
    t_order = np.argsort(batch.truth_image, kind="stable")
    left, right = _pairs(batch.image[rest], batch.truth_image[t_order])
    truth = t_order[right]
    fit = (batch.label[rest[left]] != batch.truth_label[truth]) & ~used[truth]
    left, truth = left[fit], truth[fit]
    iou = _pair_iou(batch.box[rest[left]], batch.truth_box[truth])
    candidate = iou >= THRESHOLDS[0]
    left, truth, iou = left[candidate], truth[candidate], iou[candidate]
    wanting = np.bincount(left, minlength=len(rest))
    wanted = np.bincount(truth, minlength=len(batch.truth_label))
    hard = np.union1d(batch.image[rest[wanting > 1]], batch.truth_image[wanted > 1])
    easy = ~np.isin(batch.image[rest[left]], hard)
    taken[left[easy]] = truth[easy]
    for image in hard.tolist():
        mine = np.flatnonzero(batch.image[rest[left]] == image)
        rows = np.unique(left[mine])
        # Score order, ties in input order; each takes the best-overlapping truth still free.
        rows = rows[np.lexsort((batch.position[rest[rows]], -batch.score[rest[rows]]))]
        free: set[int] = set(truth[mine].tolist())
        for row in rows.tolist():
            options = mine[left[mine] == row]
            best = [(-iou[k], int(truth[k])) for k in options if int(truth[k]) in free]
            if best:
                taken[row] = min(best)[1]
                free.discard(taken[row])
    return taken
