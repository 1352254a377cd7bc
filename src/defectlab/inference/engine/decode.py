"""Raw model outputs to detections: per-layout decoding and NMS as Ultralytics does them.

Everything here is numpy over all candidates at once; the Python loops run per block of 512
candidates in NMS (stopping at ``max_det`` kept), per final mask, and box by box only inside
an NMS block of pathological overlaps (see `_greedy`).

The rules, from Ultralytics' ``non_max_suppression`` (and YOLOv5's for the v5 layout):
candidates whose best class score is above ``conf`` (v5: objectness above ``conf`` first, then
objectness × class score), boxes from centre-size to corners, the best class only, at most
30000 candidates by score, NMS per class by shifting each class's boxes 7680 pixels apart, a
box suppressed when its IoU with a kept one is above ``iou`` (torchvision's rule, in float32),
then the first ``max_det``. End-to-end layouts have no NMS: scores above ``conf``, the first
``max_det``, then the class filter, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from defectlab.inference.engine.metadata import MAX_CLASSES

MAX_NMS = 30_000  # candidates into NMS at most, the highest scores
MAX_WH = 7680  # the per-class shift: larger than any box, so classes never overlap


@dataclass(frozen=True, slots=True)
class Candidates:
    """Detections in letterboxed input pixels, best first."""

    boxes: np.ndarray  # N×4 float32 x1, y1, x2, y2
    scores: np.ndarray  # N float32
    classes: np.ndarray  # N int64
    coefficients: np.ndarray | None = None  # N×nm float32 mask coefficients (segmentation)

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> Candidates:
        return Candidates(
            self.boxes[index],
            self.scores[index],
            self.classes[index],
            None if self.coefficients is None else self.coefficients[index],
        )


def _corners(xywh: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf: dropped as not finite
        half = xywh[:, 2:4] / np.float32(2)
        return np.concatenate((xywh[:, 0:2] - half, xywh[:, 0:2] + half), axis=1)


def _finite(picked: Candidates) -> Candidates:
    """Without boxes a broken graph made NaN or infinite: no shape can be made of them."""
    return picked.take(np.flatnonzero(np.isfinite(picked.boxes).all(axis=1)))


def _class_filter(classes: Sequence[int] | None, found: np.ndarray) -> np.ndarray:
    if classes is None:
        return np.ones(len(found), dtype=bool)
    return np.isin(found, np.asarray(list(classes), dtype=np.int64))


def decode_v8(
    output: np.ndarray,
    *,
    classes_count: int,
    conf: float,
    iou: float,
    max_det: int,
    classes: Sequence[int] | None = None,
) -> Candidates:
    """One image's ``(4+nc[+nm])×N`` output (channels first), after NMS."""
    output = np.asarray(output, dtype=np.float32)
    scores = output[4 : 4 + classes_count]
    best = scores.max(axis=0) if classes_count else np.zeros(output.shape[1], np.float32)
    index = np.flatnonzero(best > conf)
    rows = output[:, index].T  # only the candidates above conf are transposed
    found = scores[:, index].argmax(axis=0).astype(np.int64)
    picked = Candidates(
        _corners(rows[:, :4]),
        best[index],
        found,
        rows[:, 4 + classes_count :] if output.shape[0] > 4 + classes_count else None,
    )
    return _nms_stage(picked, classes, iou, max_det)


def decode_v5(
    output: np.ndarray,
    *,
    classes_count: int,
    conf: float,
    iou: float,
    max_det: int,
    classes: Sequence[int] | None = None,
) -> Candidates:
    """One image's ``N×(5+nc[+nm])`` output (YOLOv5: objectness × class score), after NMS."""
    output = np.asarray(output, dtype=np.float32)
    rows = output[output[:, 4] > conf]
    with np.errstate(invalid="ignore", over="ignore"):  # inf × 0 from a broken graph
        class_scores = rows[:, 5 : 5 + classes_count] * rows[:, 4:5]
    found = class_scores.argmax(axis=1).astype(np.int64)
    best = class_scores.max(axis=1) if len(rows) else np.zeros(0, np.float32)
    keep = best > conf
    picked = Candidates(
        _corners(rows[keep, :4]),
        best[keep],
        found[keep],
        rows[keep, 5 + classes_count :] if output.shape[1] > 5 + classes_count else None,
    )
    return _nms_stage(picked, classes, iou, max_det)


def decode_end2end(
    output: np.ndarray,
    *,
    conf: float,
    max_det: int,
    classes: Sequence[int] | None = None,
) -> Candidates:
    """One image's ``K×(6[+nm])`` end-to-end output: x1, y1, x2, y2, score, class[, masks]."""
    output = np.asarray(output, dtype=np.float32)
    rows = output[output[:, 4] > conf][:max_det]
    # Class ids come as floats; anything but a whole number below MAX_CLASSES is not a class.
    found = np.nan_to_num(rows[:, 5], nan=-1.0, posinf=-1.0, neginf=-1.0)
    found = np.clip(np.rint(found), -1, MAX_CLASSES).astype(np.int64)
    valid = (found >= 0) & (found < MAX_CLASSES)
    rows, found = rows[valid], found[valid]
    keep = _class_filter(classes, found)
    picked = Candidates(
        np.ascontiguousarray(rows[keep, :4]),
        rows[keep, 4],
        found[keep],
        rows[keep, 6:] if output.shape[1] > 6 else None,
    )
    return _finite(picked)


def _nms_stage(
    picked: Candidates, classes: Sequence[int] | None, iou: float, max_det: int
) -> Candidates:
    picked = _finite(picked.take(np.flatnonzero(_class_filter(classes, picked.classes))))
    if len(picked) > MAX_NMS:
        picked = picked.take(np.argsort(-picked.scores, kind="stable")[:MAX_NMS])
    shifted = picked.boxes + (picked.classes.astype(np.float32) * np.float32(MAX_WH))[:, None]
    return picked.take(nms(shifted, picked.scores, iou, max_det))


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou: float,
    limit: int | None = None,
    *,
    block_size: int | None = None,
) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best score first (equal scores: the earlier box
    first): a box goes when its IoU with a kept box is above ``iou``, exactly at it stays.
    Arithmetic in float32 as torchvision's. Stops once ``limit`` boxes are kept.

    The candidates are taken best first in blocks of `_BLOCK`: a block loses what the boxes
    kept so far suppress (one matrix), then greedy order inside the block is solved as the fixed
    point of "kept unless a kept, better box of the block overlaps it", iterated on the block's
    IoU matrix from "all kept". Greedy NMS is the one fixed point (by induction along the
    order), and the iteration reaches it within as many rounds as the longest chain of
    suppressions, usually two or three (`_greedy`). Only the blocks before the ``limit``-th kept box are
    looked at, so 8400 raw candidates cost a few matrices, not 300 passes over all of them."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    limit = len(order) if limit is None else limit
    threshold = np.float32(iou)
    kept = np.zeros(0, dtype=np.int64)
    size = block_size or _BLOCK
    for first in range(0, len(order), size):
        if len(kept) >= limit:
            break
        block = order[first : first + size]
        if len(kept):
            block = block[~(_overlaps(boxes[kept], boxes[block]) > threshold).any(axis=0)]
        if not len(block):
            continue
        # later[i, j]: box i is better (earlier) than box j and suppresses it.
        later = np.triu(_overlaps(boxes[block], boxes[block]) > threshold, k=1)
        kept = np.concatenate((kept, block[_greedy(later)]))
    return kept[:limit]


_BLOCK = 512
_ROUNDS = 16  # fixed-point rounds before a block is walked box by box instead


def _greedy(later: np.ndarray) -> np.ndarray:
    """Which boxes of a block greedy NMS keeps, given ``later[i, j]`` (i better than j and
    overlapping it above the threshold). Entry k of the iteration depends only on entries
    before it, so round t settles at least the first t; boxes sliding past one another in a
    long chain (each suppressing only the next) would need one round per box, and after
    `_ROUNDS` the block is finished box by box."""
    keep: np.ndarray = np.ones(len(later), dtype=bool)
    for _round in range(_ROUNDS):
        settled: np.ndarray = ~(later & keep[:, None]).any(axis=0)
        if np.array_equal(settled, keep):
            return keep
        keep = settled
    alive = np.ones(len(later), dtype=bool)
    for index in range(len(later)):
        if alive[index]:
            alive &= ~later[index]
    return alive


def _overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns), float32, computed as
    torchvision does (inter / (area_a + area_b - inter)); NaN where both boxes are empty."""
    a_x1, a_y1, a_x2, a_y2 = (a[:, k, None] for k in range(4))
    b_x1, b_y1, b_x2, b_y2 = (b[None, :, k] for k in range(4))
    zero = np.float32(0)
    width = np.maximum(zero, np.minimum(a_x2, b_x2) - np.maximum(a_x1, b_x1))
    height = np.maximum(zero, np.minimum(a_y2, b_y2) - np.maximum(a_y1, b_y1))
    inter = width * height
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (((a_x2 - a_x1) * (a_y2 - a_y1)) + ((b_x2 - b_x1) * (b_y2 - b_y1)) - inter)


def _cropped_logits(
    coefficients: np.ndarray, protos: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Mask logits in prototype pixels, zero outside each box (Ultralytics' ``crop_mask``),
    and which prototype pixels each box covers."""
    nm, mh, mw = protos.shape
    ih, iw = input_size
    flat = protos.reshape(nm, -1).astype(np.float32)
    logits = (coefficients.astype(np.float32) @ flat).reshape(-1, mh, mw)
    ratios = np.array([mw / iw, mh / ih, mw / iw, mh / ih], dtype=np.float32)
    small = boxes.astype(np.float32) * ratios
    cols = np.arange(mw, dtype=np.float32)[None, None, :]
    rows = np.arange(mh, dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (small[:, k, None, None] for k in range(4))
    inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return logits * inside, inside


def masks(
    coefficients: np.ndarray,
    protos: np.ndarray,
    boxes: np.ndarray,
    input_size: tuple[int, int],
) -> list[np.ndarray]:
    """Binary masks at the input size, one per detection, as Ultralytics' ``process_mask``
    with ``upsample=True``: coefficients @ prototypes, zero outside the box (in prototype
    pixels), bilinear upsampling (half-pixel centres, as torch's ``align_corners=False``; cv2's
    INTER_LINEAR computes the same), then logit > 0."""
    ih, iw = input_size
    logits, _inside = _cropped_logits(coefficients, protos, boxes, input_size)
    return [cv2.resize(logit, (iw, ih), interpolation=cv2.INTER_LINEAR) > 0 for logit in logits]


def outlines(
    coefficients: np.ndarray,
    protos: np.ndarray,
    boxes: np.ndarray,
    input_size: tuple[int, int],
) -> list[np.ndarray | None]:
    """`outline` of each of `masks`, in input pixels, without upsampling whole masks.

    Outside its box a mask's logits are zero, and so is their upsampling, so only the box's
    window (two zero prototype pixels around it) is upsampled. When the input is a whole
    multiple of the prototypes (4× in YOLO heads) the window's pixels are the whole mask's
    exactly: the same source positions and weights, and clamping at the window's edge reads
    the zeros of its margin, as the whole image reads the zeros beyond it."""
    _nm, mh, mw = protos.shape
    ih, iw = input_size
    if ih % mh or iw % mw:
        return [outline(mask) for mask in masks(coefficients, protos, boxes, input_size)]
    sy, sx = ih // mh, iw // mw
    logits, inside = _cropped_logits(coefficients, protos, boxes, input_size)
    found: list[np.ndarray | None] = []
    for logit, covered in zip(logits, inside, strict=True):
        cols, rows = np.flatnonzero(covered.any(axis=0)), np.flatnonzero(covered.any(axis=1))
        if not cols.size:
            found.append(None)
            continue
        c0, c1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, mw)
        r0, r1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, mh)
        window = logit[r0:r1, c0:c1]
        size = ((c1 - c0) * sx, (r1 - r0) * sy)
        points = outline(cv2.resize(window, size, interpolation=cv2.INTER_LINEAR) > 0)
        found.append(None if points is None else points + np.array([c0 * sx, r0 * sy]))
    return found


def outline(mask: np.ndarray) -> np.ndarray | None:
    """The outer contour of a binary mask with the most vertices (Ultralytics'
    ``masks2segments`` "largest" rule), K×2 in the mask's pixels; None if the mask is empty."""
    contours, _hierarchy = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return None
    largest = max(contours, key=len)
    return largest.reshape(-1, 2).astype(np.float64)
