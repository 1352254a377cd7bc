"""An evaluation's result and its JSON form (plain numbers, no NaN: stored and sent as is)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClassReport:
    """One class. `ap50` / `ap50_95` are None when the class has no ground truth (COCO leaves
    such a class out of the mean); a class with truths and no predictions has 0.

    `predictions` counts the predictions evaluated (every score, at most `max_det` per image).
    `precision` and `recall` are at IoU 0.5 and this class's threshold `conf`: precision is None
    when no prediction reaches `conf`, recall None when there is no truth. `best_conf` is the
    threshold maximising F1 at IoU 0.5 (ties: the higher one), None when no prediction ever
    matches; `best_f1` is that F1 (0.0 then), both None without truths. `curve` is the
    precision-recall curve at IoU 0.5 as (recall, precision, conf) points, one per distinct
    score, thinned evenly to at most 101 with both ends kept; empty without truths.
    """

    truths: int
    predictions: int
    ap50: float | None
    ap50_95: float | None
    precision: float | None
    recall: float | None
    conf: float
    best_conf: float | None
    best_f1: float | None
    curve: list[tuple[float, float, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "truths": self.truths,
            "predictions": self.predictions,
            "ap50": self.ap50,
            "ap50_95": self.ap50_95,
            "precision": self.precision,
            "recall": self.recall,
            "conf": self.conf,
            "best_conf": self.best_conf,
            "best_f1": self.best_f1,
            "curve": [list(point) for point in self.curve],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassReport:
        return cls(
            truths=int(data["truths"]),
            predictions=int(data["predictions"]),
            ap50=_maybe(data["ap50"]),
            ap50_95=_maybe(data["ap50_95"]),
            precision=_maybe(data["precision"]),
            recall=_maybe(data["recall"]),
            conf=_finite(data["conf"]),
            best_conf=_maybe(data["best_conf"]),
            best_f1=_maybe(data["best_f1"]),
            curve=[(_finite(r), _finite(p), _finite(c)) for r, p, c in data["curve"]],
        )


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts at IoU 0.5 and the confidence thresholds: `counts[predicted][true]`, rows and
    columns in the order of `labels` with one more, index len(labels), for background (a row
    of missed truths, a column of predictions over nothing). `matching` gives the rule."""

    labels: list[int]
    counts: list[list[int]]

    @property
    def background(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "counts": [list(row) for row in self.counts]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Confusion:
        labels = [int(label) for label in data["labels"]]
        counts = [[int(n) for n in row] for row in data["counts"]]
        size = len(labels) + 1
        if len(counts) != size or any(len(row) != size for row in counts):
            raise ValueError("a confusion matrix has one row and column per class and background")
        return cls(labels, counts)


@dataclass(frozen=True, slots=True)
class Report:
    """A model against ground truth over a set of images. `map50` and `map50_95` are COCO's
    (pycocotools' numbers, bbox, area "all", crowd-free), the mean over the classes that have
    ground truth; None when none has."""

    images: int
    map50: float | None
    map50_95: float | None
    classes: dict[int, ClassReport]
    confusion: Confusion

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "map50": self.map50,
            "map50_95": self.map50_95,
            "classes": {str(label): c.to_json() for label, c in self.classes.items()},
            "confusion": self.confusion.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        """The report `to_json` gave; ValueError for anything else (NaN or infinity anywhere, or
        classes that are not the confusion matrix's labels)."""
        try:
            report = cls(
                images=int(data["images"]),
                map50=_maybe(data["map50"]),
                map50_95=_maybe(data["map50_95"]),
                classes={
                    int(label): ClassReport.from_json(c) for label, c in data["classes"].items()
                },
                confusion=Confusion.from_json(data["confusion"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not an evaluation report: {error!r}") from error
        if sorted(report.classes) != sorted(report.confusion.labels):
            raise ValueError("not an evaluation report: its classes are not the confusion's labels")
        return report


def _finite(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"not an evaluation report: {value!r} is not a finite number")
    return number


def _maybe(value: object) -> float | None:
    return None if value is None else _finite(value)
