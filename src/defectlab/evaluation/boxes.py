"""Boxes and images as the evaluation sees them, their overlap, and the confidence thresholds.

A `Box` is an axis-aligned rectangle in image pixels with a class and a score (1.0 for ground
truth). Overlap is computed exactly as pycocotools computes it for bounding boxes (`maskApi.c`,
`bbIou`): on (x, y, width, height) with no "+1", so an IoU that pycocotools finds equal to a
threshold is equal here too.

One difference: a box so small that its area underflows to 0 (sides near 1e-200) overlaps
nothing here, while pycocotools may divide by a zero union and give NaN; such boxes do not
occur in pixel coordinates.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectlab.geometry import Shape

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# pycocotools' thresholds, made the way it makes them (np.linspace, not literals), so that a
# threshold compares with an IoU bit for bit as it does there.
IOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
# The 101 recall points of COCO's interpolated precision.
RECALL_POINTS: FloatArray = np.linspace(0.0, 1.0, 101)


def _number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Box:
    """Pixels, x1 <= x2, y1 <= y2 (a zero-size box overlaps nothing); score 1.0 for ground
    truth, 0..1 for a prediction."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: int
    score: float = 1.0

    def __post_init__(self) -> None:
        # numpy numbers (onnxruntime gives float32 / int64) become plain float and int, so a
        # box and what is made of it (`Finding.to_json`) go through json.dumps.
        corners = (self.x1, self.y1, self.x2, self.y2)
        try:
            plain = tuple(float(v) if _number(v) else math.nan for v in corners)
        except OverflowError:  # an int too large for a float
            plain = (math.nan,)
        if len(plain) != 4 or not all(math.isfinite(v) for v in plain):
            raise ValueError(f"box corners must be finite numbers, not {corners!r}")
        if plain[2] < plain[0] or plain[3] < plain[1]:
            raise ValueError(f"box corners must be ordered (x1 <= x2, y1 <= y2): {corners!r}")
        if not isinstance(self.label, (int, np.integer)) or isinstance(self.label, bool):
            raise ValueError(f"a box label is a whole number, not {self.label!r}")
        if not _number(self.score) or not 0.0 <= self.score <= 1.0:  # NaN fails both bounds
            raise ValueError(f"a box score is a number from 0 to 1, not {self.score!r}")
        for name, value in zip(("x1", "y1", "x2", "y2"), plain, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "label", operator.index(self.label))
        object.__setattr__(self, "score", float(self.score))

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Sample:
    """One image: its ground truth and a model's predictions for it. `evaluate` takes any
    whole number as the id (Python or numpy int), not a bool."""

    image_id: int
    truths: Sequence[Box]
    predictions: Sequence[Box]


def image_id(value: object) -> int:
    """A sample's image id as a plain int; ValueError for a bool or what is not a whole
    number."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"an image id is a whole number, not {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"an image id is a whole number, not {value!r}") from None


def shape_box(shape: Shape, label: int, score: float = 1.0) -> Box:
    """The bounding box of a shape (box, polygon or points) as a `Box` of `label`: a polygon is
    judged by its bounding box, as COCO's bbox evaluation does."""
    x1, y1, x2, y2 = shape.bbox()
    return Box(x1, y1, x2, y2, label, score)


def top_score(predictions: Sequence[Box]) -> float | None:
    """The highest score among `predictions`; None when there are none (a model with nothing
    to say about an image is the most uncertain about it)."""
    return max((p.score for p in predictions), default=None)


class Thresholds:
    """The confidence threshold of each class: one number for all, or a mapping that must name
    every class it is asked about (a missing class is the caller's mistake, not a default)."""

    def __init__(self, conf: float | Mapping[int, float]) -> None:
        self._all: float | None = None
        self._each: dict[int, float] = {}
        if isinstance(conf, Mapping):
            for label, value in conf.items():
                self._each[int(label)] = _checked(value, f"the threshold of class {label}")
        else:
            self._all = _checked(conf, "the confidence threshold")

    def of(self, label: int) -> float:
        if self._all is not None:
            return self._all
        try:
            return self._each[label]
        except KeyError:
            raise ValueError(f"no confidence threshold for class {label}") from None

    def require(self, labels: Iterable[int]) -> None:
        for label in labels:
            self.of(label)


def _checked(value: object, what: str) -> float:
    if not _number(value) or not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
        raise ValueError(f"{what} must be a number from 0 to 1, not {value!r}")
    return float(value)  # type: ignore[arg-type]


class Arrays:
    """A list of boxes as columns: corners as pycocotools holds them (x, y, w, h), labels,
    scores."""

    __slots__ = ("labels", "scores", "xywh")

    def __init__(self, boxes: Sequence[Box]) -> None:
        if boxes and not all(isinstance(b, Box) for b in boxes):
            raise ValueError("truths and predictions must be Box objects")
        corners = np.array([(b.x1, b.y1, b.x2, b.y2) for b in boxes], dtype=np.float64)
        corners = corners.reshape(len(boxes), 4)
        self.xywh: FloatArray = np.empty_like(corners)
        self.xywh[:, :2] = corners[:, :2]
        self.xywh[:, 2:] = corners[:, 2:] - corners[:, :2]
        self.labels: IntArray = np.array([b.label for b in boxes], dtype=np.int64)
        self.scores: FloatArray = np.array([b.score for b in boxes], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.labels)


def iou_matrix(dt: FloatArray, gt: FloatArray) -> FloatArray:
    """IoU of every detection (rows) with every truth (columns), both (x, y, w, h), with
    pycocotools' arithmetic step for step (`bbIou`): the same floating-point result."""
    dx, dy, dw, dh = (dt[:, k : k + 1] for k in range(4))
    gx, gy, gw, gh = (gt[None, :, k] for k in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    union = (dw * dh + gw * gh) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((w > 0) & (h > 0), inter / np.where(union > 0, union, 1.0), 0.0)
    return np.asarray(iou, dtype=np.float64)
