"""The letterbox is Ultralytics' predictor's, to the pixel; its inverse puts boxes back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from defectlab.inference.engine.letterbox import (
    letterbox,
    placement,
    scale_boxes,
    scale_points,
    to_tensor,
)


def ultralytics_preprocess(image: np.ndarray, new_shape: tuple[int, int]) -> np.ndarray:
    """Ultralytics' LetterBox(auto=False, scaleup=True, center=True) and the predictor's
    preprocess, restated line by line from their formulas, for comparison."""
    shape = image.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = round(shape[1] * r), round(shape[0] * r)
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        image = cv2.resize(image, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    batch = np.stack([image])[..., ::-1].transpose((0, 3, 1, 2))
    tensor = np.ascontiguousarray(batch).astype(np.float32)
    return tensor / np.float32(255)


@pytest.mark.parametrize(
    ("height", "width"),
    [(1, 1), (479, 641), (3000, 4000), (777, 333), (640, 640), (500, 1000), (1000, 500), (7, 5000)],
)
@pytest.mark.parametrize("target", [(640, 640), (320, 480)])
def test_tensor_equals_the_predictors(height: int, width: int, target: tuple[int, int]) -> None:
    rng = np.random.default_rng(height * 7919 + width)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    boxed, _where = letterbox(image, target)
    ours = to_tensor([boxed])
    assert ours.dtype == np.float32
    assert ours.shape == (1, 3, *target)
    np.testing.assert_array_equal(ours, ultralytics_preprocess(image, target))


@pytest.mark.parametrize(
    ("height", "expected"),
    [
        # 640 − height is the border; half of it is dh. An odd border gives the extra pixel
        # to the bottom, and round(dh ± 0.1) keeps a whole dh whole.
        (639, (0, 1)),  # dh 0.5
        (637, (1, 2)),  # dh 1.5
        (635, (2, 3)),  # dh 2.5: banker's rounding would say 2 for round(2.5); ±0.1 avoids it
        (633, (3, 4)),  # dh 3.5
        (638, (1, 1)),  # dh 1.0
        (636, (2, 2)),  # dh 2.0
    ],
)
def test_border_split(height: int, expected: tuple[int, int]) -> None:
    where = placement((height, 640), (640, 640))
    assert where.resized == (height, 640)
    assert (where.top, where.bottom) == expected
    assert (where.left, where.right) == (0, 0)


def test_resize_rounds_half_to_even_as_python_does() -> None:
    assert placement((777, 333), (640, 640)).resized == (640, 274)  # 274.28…
    # Scale 0.5: 5 rows → 2.5 → 2 and 7 rows → 3.5 → 4 (half to even, as the predictor).
    assert placement((5, 10), (64, 5)).resized == (2, 5)
    assert placement((7, 10), (64, 5)).resized == (4, 5)
    assert placement((100, 1), (50, 50)).resized == (50, 1)  # 0.5 → 0 would crash; kept at 1


def test_image_of_the_input_size_is_not_resized() -> None:
    image = np.arange(640 * 640 * 3, dtype=np.uint8).reshape(640, 640, 3)
    boxed, where = letterbox(image, (640, 640))
    np.testing.assert_array_equal(boxed, image)
    assert (where.top, where.bottom, where.left, where.right) == (0, 0, 0, 0)


def test_border_is_gray_114() -> None:
    boxed, where = letterbox(np.zeros((500, 1000, 3), np.uint8), (640, 640))
    assert (where.top, where.bottom) == (160, 160)
    assert (boxed[:160] == 114).all() and (boxed[-160:] == 114).all()
    assert (boxed[160:480] == 0).all()


def test_fixed_batch_is_filled_with_zeros() -> None:
    boxed, _ = letterbox(np.full((10, 10, 3), 255, np.uint8), (32, 32))
    tensor = to_tensor([boxed], batch=4)
    assert tensor.shape == (4, 3, 32, 32)
    assert tensor[0].max() == 1.0 and not tensor[1:].any()


def test_boxes_and_points_go_back_to_the_original_image() -> None:
    # 1000 wide × 500 high at 640: gain 0.64, 160 rows of border on top.
    boxes = np.array([[64, 192, 128, 224], [-10, 100, 700, 600]], dtype=np.float32)
    back = scale_boxes(boxes, (640, 640), (500, 1000))
    np.testing.assert_allclose(back[0], [100, 50, 200, 100])
    np.testing.assert_allclose(back[1], [0, 0, 1000, 500])  # clipped to the image
    points = scale_points(np.array([[64, 192], [640, 640]]), (640, 640), (500, 1000))
    np.testing.assert_allclose(points, [[100, 50], [1000, 500]])
    # 500 wide × 1000 high: the border is on the left and right.
    np.testing.assert_allclose(
        scale_boxes(np.array([[192, 64, 224, 128]]), (640, 640), (1000, 500)),
        [[50, 100, 100, 200]],
    )


def test_inverse_subtracts_the_rounded_border() -> None:
    # 637 high at 640: border 1 on top, 2 below; a box at the top of the picture maps to 0.
    assert scale_boxes(np.array([[0, 1, 10, 11]]), (640, 640), (637, 640)).tolist() == [
        [0, 0, 10, 10]
    ]


def test_yolov5_takes_the_unrounded_half_border_as_its_predictor_does() -> None:
    # 637 high at 640: the letterbox adds 1 row on top; half the border is 1.5.
    box = np.array([[0, 1.5, 10, 11.5]])
    assert scale_boxes(box, (640, 640), (637, 640)).tolist() == [[0, 0.5, 10, 10.5]]
    assert scale_boxes(box, (640, 640), (637, 640), rounded_pad=False).tolist() == [[0, 0, 10, 10]]
