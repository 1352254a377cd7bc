"""What a detector returns for one image: arrays for programs, `geometry.Shape`s for the app."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from defectlab.geometry import MIN_EXTENT, Shape, ShapeError
from defectlab.inference.engine.decode import nms


@dataclass(frozen=True, slots=True)
class Timings:
    """Milliseconds spent on each step for this image. Steps run for several images at once
    (a batched ``session.run``) are shared out evenly between them."""

    decode_ms: float = 0.0
    letterbox_ms: float = 0.0
    run_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.letterbox_ms + self.run_ms + self.postprocess_ms

    def __add__(self, other: Timings) -> Timings:
        return Timings(
            self.decode_ms + other.decode_ms,
            self.letterbox_ms + other.letterbox_ms,
            self.run_ms + other.run_ms,
            self.postprocess_ms + other.postprocess_ms,
        )


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """Detections on one image, best score first, in original-image pixels of the upright
    frame: ``boxes`` N×4 (x1, y1, x2, y2), ``scores`` N, ``classes`` N (indices into
    ``names``), ``polygons`` (segmentation models: one K×2 outline or None per detection)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    polygons: tuple[np.ndarray | None, ...] | None
    width: int
    height: int
    names: tuple[str, ...]
    timings: Timings
    tiles: int = 0  # tiles run besides the whole image (0: not tiled)

    def __len__(self) -> int:
        return len(self.scores)

    def label_names(self) -> list[str]:
        return [self.name(int(c)) for c in self.classes]

    def name(self, index: int) -> str:
        return self.names[index] if 0 <= index < len(self.names) else f"class {index}"

    def merged_by(self, groups: Sequence[int | None], iou: float) -> Detections:
        """These detections with NMS run again within each group of classes that share one
        (``groups[class index]``, e.g. the project label two model classes both become), as
        the engine's per-class NMS would have run had they been one class: greedy, best score
        first, a detection dropped when its box's IoU with a kept one of its group is above
        ``iou`` (the request's; polygons go by their boxes, as in the engine). A class alone in
        its group, in group None or beyond ``groups`` is untouched; the order (best first),
        timings and tiles stay. Itself when nothing goes, at once when no group holds two
        classes (a one-to-one mapping).

        Run after the engine's NMS, not instead of it: a detection the engine's NMS dropped
        for its own class no longer suppresses anything here. End-to-end layouts, which the
        engine does not suppress, are suppressed here within shared groups all the same."""
        members: dict[int, list[int]] = {}
        for kind, group in enumerate(groups):
            if group is not None:
                members.setdefault(group, []).append(kind)
        shared = [classes for classes in members.values() if len(classes) > 1]
        if not shared or len(self) < 2:
            return self
        keep = np.ones(len(self), dtype=bool)
        for classes in shared:
            inside = np.flatnonzero(np.isin(self.classes, classes))
            if inside.size < 2:
                continue
            kept = nms(self.boxes[inside], self.scores[inside], iou)
            keep[inside] = False
            keep[inside[kept]] = True
        if keep.all():
            return self
        index = np.flatnonzero(keep)
        polygons = None if self.polygons is None else tuple(self.polygons[i] for i in index)
        return replace(
            self,
            boxes=self.boxes[index],
            scores=self.scores[index],
            classes=self.classes[index],
            polygons=polygons,
        )

    def shapes(self) -> list[Shape]:
        """The detections as shapes: a polygon where the model gave a usable outline, else the
        box; ``label`` the class index, ``score`` clamped to [0, 1], points clipped to the image.

        An outline that touches itself (thin mask parts make such contours) is replaced by its
        convex hull, and one that still has no area by the box; a box without area after
        clipping is left out, as the app would refuse it."""
        shapes: list[Shape] = []
        for index in range(len(self)):
            label = int(self.classes[index])
            score = min(max(float(self.scores[index]), 0.0), 1.0)
            if self.polygons is not None and self.polygons[index] is not None:
                polygon = self._polygon(self.polygons[index], label, score)  # type: ignore[arg-type]
                if polygon is not None:
                    shapes.append(polygon)
                    continue
            x1, y1, x2, y2 = (float(v) for v in self.boxes[index])
            box = Shape.box(x1, y1, x2, y2, label=label, score=score).clipped(
                self.width, self.height
            )
            (bx1, by1), (bx2, by2) = box.points
            if bx2 - bx1 >= MIN_EXTENT and by2 - by1 >= MIN_EXTENT:
                shapes.append(box)
        return shapes

    def _polygon(self, points: np.ndarray, label: int, score: float) -> Shape | None:
        for outline in (points, _hull(points)):
            if outline is None or len(outline) < 3:
                continue
            try:
                shape = Shape.polygon(outline, label=label, score=score).clipped(
                    self.width, self.height
                )
                shape.validate(self.width, self.height)
            except ShapeError:
                continue
            return shape
        return None


def _hull(points: np.ndarray) -> np.ndarray | None:
    if len(points) < 3:
        return None
    hull = cv2.convexHull(np.asarray(points, dtype=np.float32))
    return np.asarray(hull, dtype=np.float64).reshape(-1, 2)
