"""Raw model outputs to detections: per-layout decoding and NMS as Ultralytics does them.

Everything here is numpy over all candidates at once; the only Python loops run once per
detection KEPT (NMS's greedy walk, stopping at ``max_det``) or once per final mask.

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


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int | None = None) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best score first (equal scores: the earlier box
    first): a box goes when its IoU with a kept box is above ``iou``, exactly at it stays.
    Arithmetic in float32 as torchvision's. Stops after ``limit`` kept boxes."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    threshold = np.float32(iou)
    keep: list[int] = []
    limit = len(order) if limit is None else limit
    with np.errstate(divide="ignore", invalid="ignore"):
        while order.size and len(keep) < limit:
            best, rest = int(order[0]), order[1:]
            keep.append(best)
            width = np.maximum(
                np.float32(0), np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
            )
            height = np.maximum(
                np.float32(0), np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
            )
            inter = width * height
            overlap = inter / (areas[best] + areas[rest] - inter)
            order = rest[~(overlap > threshold)]  # NaN (two empty boxes) never suppresses
    return np.asarray(keep, dtype=np.int64)


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
    nm, mh, mw = protos.shape
    ih, iw = input_size
    logits = (coefficients.astype(np.float32) @ protos.reshape(nm, -1).astype(np.float32)).reshape(
        -1, mh, mw
    )
    ratios = np.array([mw / iw, mh / ih, mw / iw, mh / ih], dtype=np.float32)
    small = boxes.astype(np.float32) * ratios
    cols = np.arange(mw, dtype=np.float32)[None, None, :]
    rows = np.arange(mh, dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (small[:, k, None, None] for k in range(4))
    inside = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    logits = logits * inside
    return [cv2.resize(logit, (iw, ih), interpolation=cv2.INTER_LINEAR) > 0 for logit in logits]


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
