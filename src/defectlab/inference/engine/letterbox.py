"""Letterbox preprocessing, exactly as Ultralytics' predictor does it for an ONNX model, and its
inverse on boxes and points.

The predictor uses ``LetterBox(auto=False, scaleup=True, center=True)`` for exported models:
one scale ``r = min(new_h / h, new_w / w)`` for both sides, the resized size rounded with
Python's ``round`` (half to even), OpenCV's INTER_LINEAR resize (skipped when the size does not
change), the gray (114) border split with ``round(d - 0.1)`` before and ``round(d + 0.1)``
after, so an odd border puts the extra pixel after. Then BGR → RGB, HWC → CHW, float32 divided
by 255. A detector's scores move when any of this differs (another resize, a border off by one
pixel), so every formula here is the predictor's, to the rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = (114, 114, 114)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an image of ``image_size`` landed in the ``input_size`` tensor (both height, width)."""

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    resized: tuple[int, int]  # (height, width) after the resize, before the border
    top: int
    bottom: int
    left: int
    right: int


def placement(image_size: tuple[int, int], input_size: tuple[int, int]) -> Placement:
    """The predictor's letterbox arithmetic for an image of ``image_size`` (height, width)."""
    height, width = image_size
    new_h, new_w = input_size
    r = min(new_h / height, new_w / width)
    # The predictor computes int(round(side * r)); a side rounding to 0 (an image hundreds of
    # times longer than wide) would crash it, so it is kept at one pixel here.
    unpad_w, unpad_h = max(1, round(width * r)), max(1, round(height * r))
    dw, dh = (new_w - unpad_w) / 2, (new_h - unpad_h) / 2
    return Placement(
        image_size=(height, width),
        input_size=(new_h, new_w),
        resized=(unpad_h, unpad_w),
        top=round(dh - 0.1),
        bottom=round(dh + 0.1),
        left=round(dw - 0.1),
        right=round(dw + 0.1),
    )


def letterbox(image: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, Placement]:
    """``image`` (H×W×3 uint8 BGR) resized and bordered to ``input_size``: still BGR, HWC."""
    where = placement((image.shape[0], image.shape[1]), input_size)
    if (image.shape[0], image.shape[1]) != where.resized:
        size = (where.resized[1], where.resized[0])
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    bordered = cv2.copyMakeBorder(
        image,
        where.top,
        where.bottom,
        where.left,
        where.right,
        cv2.BORDER_CONSTANT,
        value=PAD_VALUE,
    )
    return bordered, where


def to_tensor(images: Sequence[np.ndarray], *, batch: int | None = None) -> np.ndarray:
    """Letterboxed BGR images (all the same size) as one N×3×H×W float32 RGB tensor in [0, 1];
    ``batch`` larger than the number of images fills the rest with zeros (a model exported
    for a fixed batch)."""
    count = max(len(images), batch or 0)
    height, width = images[0].shape[:2]
    tensor = np.zeros((count, 3, height, width), dtype=np.float32)
    for index, image in enumerate(images):
        tensor[index] = image[:, :, ::-1].transpose(2, 0, 1)
    # Division, not multiplication by 1/255: the predictor divides, and the two differ in the
    # last bit of some values.
    np.divide(tensor, np.float32(255), out=tensor)
    return tensor


def _gain_and_pad(
    input_size: tuple[int, int], image_size: tuple[int, int], *, rounded: bool = True
) -> tuple[float, float, float]:
    gain = min(input_size[0] / image_size[0], input_size[1] / image_size[1])
    pad_x = (input_size[1] - image_size[1] * gain) / 2
    pad_y = (input_size[0] - image_size[0] * gain) / 2
    if rounded:
        return gain, round(pad_x - 0.1), round(pad_y - 0.1)
    return gain, pad_x, pad_y


def scale_boxes(
    boxes: np.ndarray,
    input_size: tuple[int, int],
    image_size: tuple[int, int],
    *,
    rounded_pad: bool = True,
) -> np.ndarray:
    """Boxes (N×4 x1, y1, x2, y2) in letterboxed input pixels → original-image pixels, clipped
    to the image (Ultralytics' ``scale_boxes`` and ``clip_boxes``).

    Ultralytics 8 subtracts the border the letterbox added (``round(pad - 0.1)``); YOLOv5's own
    ``scale_boxes`` subtracts the unrounded half border (``rounded_pad=False``), which moves
    boxes by up to half an input pixel where the border is odd. Each model family's boxes are
    put back as its own predictor puts them."""
    gain, pad_x, pad_y = _gain_and_pad(input_size, image_size, rounded=rounded_pad)
    out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 4)
    out[:, [0, 2]] -= pad_x
    out[:, [1, 3]] -= pad_y
    out /= gain
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, image_size[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, image_size[0])
    return out


def scale_points(
    points: np.ndarray, input_size: tuple[int, int], image_size: tuple[int, int]
) -> np.ndarray:
    """Points (K×2 x, y) in letterboxed input pixels → original-image pixels, clipped.

    The border subtracted is the one the letterbox added (rounded as `scale_boxes` does);
    Ultralytics 8's ``scale_coords`` subtracts the unrounded half border instead, which moves
    polygon vertices by at most half an input pixel."""
    gain, pad_x, pad_y = _gain_and_pad(input_size, image_size)
    out = np.array(points, dtype=np.float64, copy=True).reshape(-1, 2)
    out[:, 0] = ((out[:, 0] - pad_x) / gain).clip(0, image_size[1])
    out[:, 1] = ((out[:, 1] - pad_y) / gain).clip(0, image_size[0])
    return out
