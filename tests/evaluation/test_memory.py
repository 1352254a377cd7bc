"""The report's precision tables are the evaluation's memory peak on large sets: computed one
IoU threshold at a time (a tenth of the whole block), with exactly the numbers of the block."""

from __future__ import annotations

import tracemalloc

import numpy as np

from defectlab.evaluation.matching import THRESHOLDS
from defectlab.evaluation.metrics import RECALL_POINTS, _precision_table


def block_table(matched: np.ndarray, truths: int) -> np.ndarray:
    """The former whole-block computation."""
    table = np.zeros((len(THRESHOLDS), len(RECALL_POINTS)))
    tp = np.cumsum(matched, axis=1).astype(float)
    fp = np.cumsum(~matched, axis=1).astype(float)
    recall = tp / truths
    precision = tp / (fp + tp + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for t in range(len(THRESHOLDS)):
        at = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        inside = at < matched.shape[1]
        table[t, inside] = envelope[t, at[inside]]
    return table


def test_the_precision_table_is_the_same_in_a_fraction_of_the_memory() -> None:
    rng = np.random.default_rng(7)
    detections = 100_000
    matched = rng.random((len(THRESHOLDS), detections)) < np.linspace(0.9, 0.2, 10)[:, None]
    truths = int(matched[0].sum()) + 500
    assert np.array_equal(_precision_table(matched, truths), block_table(matched, truths))
    tracemalloc.start()
    try:
        _precision_table(matched, truths)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A few float rows of one threshold (~8 bytes × a few per detection), not ten times that.
    assert peak < 8 * 8 * detections, peak
