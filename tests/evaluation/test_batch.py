"""`evaluate` matches images in batches; the result must be that of matching each image alone
(`matching.scene`, which `findings` uses), whatever the batch size."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defectlab.evaluation import Box, Sample, evaluate, metrics
from defectlab.evaluation.boxes import Arrays, Thresholds
from defectlab.evaluation.matching import scene
from tests.evaluation.test_coco import scenes


def confusion_image_by_image(
    samples: list[Sample], labels: list[int], conf: dict[int, float], max_det: int
) -> list[list[int]]:
    index = {label: k for k, label in enumerate(labels)}
    background = len(labels)
    counts = np.zeros((background + 1, background + 1), dtype=np.int64)
    wanted = np.array(labels, dtype=np.int64)
    for sample in samples:
        matched = scene(
            Arrays(sample.truths), Arrays(sample.predictions), wanted, Thresholds(conf), max_det
        )
        truth_of = matched.truths.labels.tolist()
        for prediction in matched.confident:
            row = index[int(matched.predictions.labels[prediction])]
            truth = matched.same.get(prediction, matched.other.get(prediction))
            counts[row, background if truth is None else index[truth_of[truth]]] += 1
        for truth in matched.missed:
            counts[background, index[truth_of[truth]]] += 1
    return counts.tolist()


@settings(max_examples=300)
@given(scenes(), st.sampled_from([0.0, 0.3, 0.5]), st.integers(1, 3), st.sampled_from([1, 2, 100]))
def test_batches_count_as_images_one_by_one(
    scene_: tuple[list[Sample], list[int]], conf: float, max_det: int, batch: int
) -> None:
    samples, labels = scene_
    thresholds = {label: conf + 0.1 * (k % 2) for k, label in enumerate(labels)}
    expected = confusion_image_by_image(samples, labels, thresholds, max_det)
    whole = evaluate(samples, labels, conf=thresholds, max_det=max_det)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "BATCH", batch)
        batched = evaluate(samples, labels, conf=thresholds, max_det=max_det)
    assert whole.confusion.counts == expected
    assert batched == whole


def test_crowded_cross_class_matching() -> None:
    # Two confident B predictions over two A truths and a C truth, all overlapping: the best
    # score goes first and takes the best overlap, the next the earlier of two equal ones.
    truths = [Box(0, 0, 10, 10, 1), Box(0, 0, 10, 11, 1), Box(0, 0, 11, 10, 3)]
    predictions = [Box(0, 0, 10, 10, 2, 0.9), Box(0, 0, 10, 10, 2, 0.8)]
    samples = [Sample(1, truths, predictions)]
    counts = evaluate(samples, [1, 2, 3], conf=0.5).confusion.counts
    assert counts == confusion_image_by_image(samples, [1, 2, 3], {1: 0.5, 2: 0.5, 3: 0.5}, 100)
    assert counts[1] == [2, 0, 0, 0]
    assert counts[3] == [0, 0, 1, 0]


def test_evaluate_keeps_no_images_it_has_matched() -> None:
    """Streaming: the samples of a finished batch are dropped, only their numbers stay."""
    gone: list[weakref.ref[Sample]] = []
    alive_at_the_end: list[int] = []

    def stream() -> Iterator[Sample]:
        for k in range(5 * metrics.BATCH):
            sample = Sample(k, [Box(0, 0, 10, 10, 0)], [Box(0, 0, 10, 10, 0, 0.9)])
            gone.append(weakref.ref(sample))
            yield sample
            del sample
        alive_at_the_end.append(sum(ref() is not None for ref in gone[: -2 * metrics.BATCH]))

    report = evaluate(stream(), [0], conf=0.5)
    assert alive_at_the_end == [0]
    assert report.images == 5 * metrics.BATCH
    assert report.classes[0].truths == 5 * metrics.BATCH
