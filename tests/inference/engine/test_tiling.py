"""Tiling finds a defect a few pixels wide on a 4000 × 3000 panel, once."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.inference.engine import Detector
from defectlab.inference.engine.letterbox import letterbox
from defectlab.inference.engine.tiling import Tile, cut_at_edge, merge, starts, tiles
from tests.inference.graphs import blob_model


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(blob_model())


def panel(spots: list[tuple[int, int, int]]) -> np.ndarray:
    """A dark 4000 × 3000 panel with bright square spots (x, y, side)."""
    image = np.full((3000, 4000, 3), 20, dtype=np.uint8)
    for x, y, side in spots:
        image[y : y + side, x : x + side] = 255
    return image


def test_a_tiny_defect_is_found_only_when_tiled(detector: Detector) -> None:
    # 3 pixels wide at x 604, y 300: in the overlap of the first two tiles of the top row
    # (tiles start every 512 pixels: 0..640 and 512..1152).
    image = panel([(604, 300, 3)])
    shrunk, _ = letterbox(image, (640, 640))
    assert shrunk.mean(axis=2).max() < 0.5 * 255  # at 640 the spot is gone: nothing to find
    assert len(detector.detect(image)) == 0
    tiled = detector.detect(image, tile=True)
    assert tiled.tiles == 48  # 8 columns × 6 rows
    # The 32-pixel cell holding it, seen by two tiles, reported once.
    assert tiled.boxes.tolist() == [[576, 288, 608, 320]]
    assert tiled.classes.tolist() == [0] and tiled.scores.tolist() == [1.0]
    (shape,) = tiled.shapes()
    shape.validate(4000, 3000)


def test_large_and_small_defects_together(detector: Detector) -> None:
    image = panel([(2000, 1500, 300), (3990, 2990, 4)])  # a big one, and a speck in the corner
    whole = detector.detect(image)
    assert len(whole) > 0  # the big one is visible at 640
    tiled = detector.detect(image, tile=True)
    # The last tiles sit flush with the image's edges: the speck's own cell, once.
    assert tiled.boxes.tolist().count([3968, 2968, 4000, 3000]) == 1
    # Every box lies on the image, and no two boxes of the merged result overlap much.
    boxes = tiled.boxes
    assert (boxes[:, [0, 2]] <= 4000).all() and (boxes[:, [1, 3]] <= 3000).all()
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert _iou(boxes[i], boxes[j]) <= 0.7


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_small_image_is_not_tiled(detector: Detector) -> None:
    found = detector.detect(np.zeros((400, 600, 3), np.uint8), tile=True)
    assert found.tiles == 0


def test_tiles_overlap_and_end_flush() -> None:
    assert starts(4000, 640, 0.2) == [0, 512, 1024, 1536, 2048, 2560, 3072, 3360]
    assert starts(640, 640, 0.2) == [0] and starts(100, 640, 0.2) == [0]
    assert starts(700, 640, 0.5) == [0, 60]
    grid = tiles((3000, 4000), (640, 640), 0.2)
    assert len(grid) == 48 and grid[-1] == Tile(3360, 2360, 640, 640)
    with pytest.raises(ValueError):
        tiles((3000, 4000), (640, 640), 1.0)


def test_cut_parts_give_way_to_a_whole_view() -> None:
    tile = Tile(512, 0, 640, 640)
    boxes = np.array(
        [
            [1100, 100, 1152, 140],  # reaches the tile's right side, inside the image: cut
            [1100, 100, 1180, 140],  # the same object whole, from the next tile
            [700, 0, 750, 40],  # at the image's top edge: not cut
            [512, 500, 530, 540],  # reaches the tile's left side: cut, and nothing covers it
        ],
        dtype=np.float64,
    )
    cut = cut_at_edge(boxes, tile, (3000, 4000))
    assert cut.tolist() == [True, True, False, True]
    cut[1] = False  # as its own tile judged it
    kept = merge(
        boxes, np.array([0.95, 0.6, 0.7, 0.5]), np.zeros(4, np.int64), cut, iou=0.7, max_det=300
    )
    assert sorted(kept.tolist()) == [1, 2, 3]  # the part went although it scored higher
    other_class = merge(
        boxes, np.array([0.95, 0.6, 0.7, 0.5]), np.array([1, 0, 0, 0]), cut, iou=0.7, max_det=300
    )
    assert sorted(other_class.tolist()) == [0, 1, 2, 3]
