"""Tiled inference for small defects on large images.

At 640 pixels a 4000-pixel-wide panel shrinks six times and a scratch a few pixels wide
disappears. Tiling runs the model on overlapping crops at native resolution, each exactly the
model's input size (so nothing is resized), and once on the whole image letterboxed as usual
(for defects larger than a tile), then merges:

1. Each detection is mapped back to the image by its tile's offset.
2. A tile's detection that reaches (within `EDGE_MARGIN` pixels) a side of its tile that lies
   inside the image is "cut": the tile saw only part of the object. It is dropped when a
   detection of the same class that is not cut (from a neighbouring tile, whose overlap holds
   the whole object, or from the whole-image pass) covers at least `COVERED` of its area. A
   cut detection nothing whole covers is kept: a part is better than nothing for an object
   larger than the overlap that the whole-image pass missed.
3. NMS per class across everything left (the request's IoU), best score first, then
   ``max_det``: the same object seen by two overlapping tiles is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectlab.inference.engine.decode import nms

DEFAULT_OVERLAP = 0.2
EDGE_MARGIN = 2.0  # pixels: boxes are regressed, and a cut object's box ends near the edge
COVERED = 0.6
_BLOCK = 256  # cut detections compared with all whole ones per step: bounds the memory


@dataclass(frozen=True, slots=True)
class Tile:
    x: int
    y: int
    width: int
    height: int


def starts(length: int, tile: int, overlap: float) -> list[int]:
    """Where tiles of ``tile`` pixels begin along a side of ``length`` pixels, at least
    ``overlap`` (a fraction of the tile) overlapping, the last one flush with the end."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    positions = list(range(0, length - tile, step))
    positions.append(length - tile)
    return positions


def tiles(image_size: tuple[int, int], tile_size: tuple[int, int], overlap: float) -> list[Tile]:
    """The tiles covering an image of ``image_size`` (height, width), row by row."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    height, width = image_size
    tile_h, tile_w = tile_size
    return [
        Tile(x, y, min(tile_w, width), min(tile_h, height))
        for y in starts(height, tile_h, overlap)
        for x in starts(width, tile_w, overlap)
    ]


def cut_at_edge(boxes: np.ndarray, tile: Tile, image_size: tuple[int, int]) -> np.ndarray:
    """Which ``boxes`` (image pixels) reach a side of ``tile`` that lies inside the image."""
    height, width = image_size
    left, top = tile.x, tile.y
    right, bottom = tile.x + tile.width, tile.y + tile.height
    cut = np.zeros(len(boxes), dtype=bool)
    if left > 0:
        cut |= boxes[:, 0] <= left + EDGE_MARGIN
    if top > 0:
        cut |= boxes[:, 1] <= top + EDGE_MARGIN
    if right < width:
        cut |= boxes[:, 2] >= right - EDGE_MARGIN
    if bottom < height:
        cut |= boxes[:, 3] >= bottom - EDGE_MARGIN
    return cut


def merge(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    cut: np.ndarray,
    *,
    iou: float,
    max_det: int,
) -> np.ndarray:
    """Indices of the detections kept from all tiles and the whole image (rules 2 and 3),
    best score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    index = np.flatnonzero(~covered_parts(boxes, classes, cut))
    if not index.size:
        return index
    # Shift each class apart by more than the boxes' extent, so one NMS keeps classes apart;
    # boxes are taken relative to their extent first, so float32 keeps sub-pixel precision.
    kept = boxes[index]
    origin = kept[:, :2].min(axis=0)
    relative = kept - np.concatenate((origin, origin))
    span = float(relative.max()) + 1.0
    shifted = relative + (classes[index].astype(np.float64) * span)[:, None]
    return index[nms(shifted, scores[index], iou, max_det)]


def covered_parts(boxes: np.ndarray, classes: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """For each detection: is it cut, and covered at least COVERED by a whole one of its class?"""
    parts = np.flatnonzero(cut)
    whole = np.flatnonzero(~cut)
    covered = np.zeros(len(boxes), dtype=bool)
    if not parts.size or not whole.size:
        return covered
    b = boxes[whole][None, :, :]
    for first in range(0, parts.size, _BLOCK):
        block = parts[first : first + _BLOCK]
        a = boxes[block][:, None, :]
        width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
        height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(area > 0, inter / area, 1.0)
        same = classes[block][:, None] == classes[whole][None, :]
        covered[block] = ((share >= COVERED) & same).any(axis=1)
    return covered
