"""pycocotools' COCOeval run on the same boxes, the reference the evaluation must equal."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from defectlab.evaluation import Box, Sample


@dataclass(frozen=True)
class Reference:
    map50_95: float | None
    map50: float | None
    ap50_95: dict[int, float | None]
    ap50: dict[int, float | None]


def _xywh(box: Box) -> list[float]:
    # The conversion a COCO export makes: width = x2 - x1, kept as floats (no JSON trip).
    return [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1]


def _dataset(samples: Sequence[Sample], labels: Sequence[int]) -> dict[str, Any]:
    images = [{"id": s.image_id, "width": 100_000, "height": 100_000} for s in samples]
    categories = [{"id": label + 1, "name": str(label)} for label in labels]
    annotations = []
    for sample in samples:
        for box in sample.truths:
            xywh = _xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": sample.image_id,
                    "category_id": box.label + 1,
                    "bbox": xywh,
                    "area": xywh[2] * xywh[3],
                    "iscrowd": 0,
                }
            )
    return {"images": images, "categories": categories, "annotations": annotations}


def _results(gt: COCO, samples: Sequence[Sample]) -> COCO:
    results = [
        {
            "image_id": s.image_id,
            "category_id": box.label + 1,
            "bbox": _xywh(box),
            "score": box.score,
        }
        for s in samples
        for box in s.predictions
    ]
    if results:
        return gt.loadRes(results)
    empty = COCO()
    empty.dataset = {**gt.dataset, "annotations": []}
    empty.createIndex()
    return empty


def _mean(cells: np.ndarray) -> float | None:
    kept = cells[cells > -1]
    return None if len(kept) == 0 else float(np.mean(kept))


def coco_reference(
    samples: Sequence[Sample], labels: Sequence[int], max_det: int = 100
) -> Reference:
    """COCO's numbers for `samples` (category id = label + 1, so ids start at 1 and sort as the
    labels do). With max_det 100 the mAPs are `summarize()`'s own stats; otherwise the same
    cells of `eval["precision"]` summarize would read."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = _dataset(samples, labels)
        gt.createIndex()
        dt = _results(gt, samples)
        run = COCOeval(gt, dt, "bbox")
        run.params.maxDets = [1, 10, 100] if max_det == 100 else [max_det]
        run.evaluate()
        run.accumulate()
        precision = run.eval["precision"][:, :, :, [0], [len(run.params.maxDets) - 1]]
        if max_det == 100:
            run.summarize()
            map50_95, map50 = (float(v) for v in run.stats[:2])
            overall: tuple[float | None, float | None] = (
                None if map50_95 == -1 else map50_95,
                None if map50 == -1 else map50,
            )
        else:
            overall = (_mean(precision), _mean(precision[[0]]))
    cats = list(run.params.catIds)
    ap50_95 = {label: _mean(precision[:, :, cats.index(label + 1)]) for label in labels}
    ap50 = {label: _mean(precision[[0], :, cats.index(label + 1)]) for label in labels}
    return Reference(overall[0], overall[1], ap50_95, ap50)
