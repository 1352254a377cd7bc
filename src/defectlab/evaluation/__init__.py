"""Detection metrics, pure (no Django models, no database): how good a model is against ground
truth, and where the two disagree.

- `evaluate(samples, labels, conf=...)` streams over images (`Sample`: truths and predictions as
  `Box`es in pixels) and gives a `Report`: COCO mAP50 and mAP50-95 equal to pycocotools' (the
  `metrics` module says how), precision / recall per class at a threshold, the best threshold by
  F1, the precision-recall curve and a confusion matrix with background (`matching` gives the
  rule). `Report.to_json()` / `Report.from_json()` keep it as plain JSON.
- `findings(sample, conf=...)` ranks one image's likely label errors: missing, duplicate,
  wrong_class, loose_box, extra (the `findings` module gives the rules and scores);
  `disagreement` sums an image up in one number, `top_score` is a model's certainty about it, for ordering queues.
- `shape_box` turns a `geometry.Shape` into the `Box` it is judged by.

    report = evaluate(samples, [1, 2, 3], conf=0.25)
    report.map50, report.classes[1].best_conf, report.confusion.counts
"""

from __future__ import annotations

from defectlab.evaluation.boxes import IOU_THRESHOLDS, Box, Sample, shape_box, top_score
from defectlab.evaluation.findings import (
    KINDS,
    LOOSE_IOU,
    MISSING_SIDE,
    Finding,
    disagreement,
    findings,
)
from defectlab.evaluation.metrics import evaluate
from defectlab.evaluation.report import ClassReport, Confusion, Report

__all__ = [
    "IOU_THRESHOLDS",
    "KINDS",
    "LOOSE_IOU",
    "MISSING_SIDE",
    "Box",
    "ClassReport",
    "Confusion",
    "Finding",
    "Report",
    "Sample",
    "disagreement",
    "evaluate",
    "findings",
    "shape_box",
    "top_score",
]
