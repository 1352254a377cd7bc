"""`Detections.merged_by`: classes that share a group (the project label they both become) are
suppressed among themselves by the engine's NMS, as one class would have been; classes alone
in their group, or in none, are left as they are."""

from __future__ import annotations

import numpy as np

from defectlab.inference.engine.detections import Detections, Timings

SQUARE = [0, 0, 10, 10]
ABOVE = [0, 0, 10, 6]  # IoU 0.6 with SQUARE
AT = [0, 0, 10, 5]  # IoU 0.5 with SQUARE, exactly
TIMINGS = Timings(run_ms=3.0)


def detections(rows: list[tuple[list[float], float, int]], polygons: bool = False) -> Detections:
    return Detections(
        boxes=np.array([box for box, _score, _class in rows], dtype=np.float64).reshape(-1, 4),
        scores=np.array([score for _box, score, _class in rows], dtype=np.float32),
        classes=np.array([kind for _box, _score, kind in rows], dtype=np.int64),
        polygons=tuple(np.array(box, dtype=np.float64).reshape(2, 2) for box, *_ in rows)
        if polygons
        else None,
        width=100,
        height=100,
        names=("light", "deep", "dent", "stain"),
        timings=TIMINGS,
        tiles=4,
    )


def test_classes_of_one_group_are_suppressed_as_one_class() -> None:
    found = detections(
        [
            (SQUARE, 0.9, 0),  # light
            (SQUARE, 0.85, 2),  # dent: its own group, overlaps everything, untouched
            (ABOVE, 0.8, 1),  # deep, above the IoU with the light square: goes
            (AT, 0.7, 1),  # deep, exactly at the IoU: stays (as in the engine's NMS)
            (SQUARE, 0.6, 3),  # stain: group None, untouched
            (ABOVE, 0.5, 2),  # dent again: the engine kept it, no other class is its group
        ],
        polygons=True,
    )
    merged = found.merged_by([7, 7, 8, None], 0.5)
    assert merged.scores.tolist() == np.float32([0.9, 0.85, 0.7, 0.6, 0.5]).tolist()
    assert merged.classes.tolist() == [0, 2, 1, 3, 2]
    assert merged.boxes.tolist() == [SQUARE, SQUARE, AT, SQUARE, ABOVE]
    assert merged.polygons is not None and len(merged.polygons) == 5
    assert merged.polygons[2].tolist() == [[0, 0], [10, 5]]  # polygons follow their boxes
    assert (merged.timings, merged.tiles, merged.names) == (TIMINGS, 4, found.names)
    # A lower IoU suppresses the box exactly at 0.5 too; a higher one keeps both.
    assert found.merged_by([7, 7, 8, None], 0.49).classes.tolist() == [0, 2, 3, 2]
    assert found.merged_by([7, 7, 8, None], 0.9) is found


def test_the_best_of_the_group_wins_whatever_its_class() -> None:
    found = detections([(ABOVE, 0.95, 1), (SQUARE, 0.9, 0), ([50, 50, 60, 60], 0.4, 0)])
    merged = found.merged_by([1, 1], 0.5)
    assert merged.classes.tolist() == [1, 0]
    assert merged.boxes.tolist() == [ABOVE, [50, 50, 60, 60]]
    assert merged.polygons is None


def test_nothing_shared_is_no_work() -> None:
    found = detections([(SQUARE, 0.9, 0), (ABOVE, 0.8, 1), (AT, 0.7, 2)])
    assert found.merged_by([1, 2, 3, None], 0.5) is found  # one-to-one
    assert found.merged_by([None, None, None, None], 0.5) is found
    assert found.merged_by([], 0.5) is found
    # Shared, but the boxes do not overlap enough: the same object comes back.
    assert found.merged_by([1, 1, 1], 0.9) is found
    lone = detections([(SQUARE, 0.9, 0)])
    assert lone.merged_by([1, 1], 0.5) is lone
    empty = detections([])
    assert len(empty.merged_by([1, 1], 0.5)) == 0
