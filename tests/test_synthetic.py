"""Tests for the synthetic defect-image generator."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from defectlab.synthetic import (
    DEFECT_KINDS,
    SyntheticDefect,
    _render,
    _to_image,
    defect_image,
    defect_images,
    encode,
    grayscale16,
)

Point = tuple[float, float]

# Small images keep the many-seed tests fast; defect sizes scale with the image.
W, H = 320, 240


def _orientation(p: Point, q: Point, r: Point) -> int:
    cross = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    return int(cross > 1e-9) - int(cross < -1e-9)


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """Whether r, known to be collinear with p-q, lies within the segment's bounds."""
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def _segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def _is_simple(polygon: Sequence[Point]) -> bool:
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbouring edges share a vertex by construction
            if _segments_intersect(*edges[i], *edges[j]):
                return False
    return True


def _area(polygon: Sequence[Point]) -> float:
    xs = np.array([p[0] for p in polygon])
    ys = np.array([p[1] for p in polygon])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def test_simplicity_check_rejects_a_bow_tie_and_accepts_a_square() -> None:
    assert _is_simple([(0, 0), (4, 0), (4, 4), (0, 4)])
    assert not _is_simple([(0, 0), (4, 4), (4, 0), (0, 4)])


def test_same_seed_gives_identical_bytes_and_defects() -> None:
    first, first_defects = defect_image(42, W, H)
    second, second_defects = defect_image(42, W, H)
    assert encode(first) == encode(second)
    assert encode(first, "PNG") == encode(second, "PNG")
    assert first_defects == second_defects


def test_different_seeds_give_different_images() -> None:
    images = {encode(defect_image(seed, W, H)[0], "PNG") for seed in range(5)}
    assert len(images) == 5


def test_image_is_rgb_of_requested_size() -> None:
    image, _ = defect_image(3, 200, 150)
    assert image.mode == "RGB"
    assert image.size == (200, 150)


def _check_geometry(defect: SyntheticDefect, width: int, height: int) -> None:
    assert defect.kind in DEFECT_KINDS
    assert defect.severity in ("minor", "major", "critical")
    assert all(type(v) is float for v in defect.box)
    assert all(type(v) is float for point in defect.polygon for v in point)
    x1, y1, x2, y2 = defect.box
    assert 0 <= x1 < x2 <= width
    assert 0 <= y1 < y2 <= height
    polygon = defect.polygon
    assert 3 <= len(polygon) <= 40
    for x, y in polygon:
        assert 0 <= x <= width and 0 <= y <= height
        assert x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1
    assert _area(polygon) > 1
    assert _is_simple(polygon), defect


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    width=st.integers(96, 400),
    height=st.integers(96, 400),
)
def test_defect_geometry_is_inside_simple_and_boxed(seed: int, width: int, height: int) -> None:
    _, defects = defect_image(seed, width, height)
    for defect in defects:
        _check_geometry(defect, width, height)


def test_dents_are_sixteen_gons() -> None:
    dents = [d for seed in range(40) for d in defect_image(seed, W, H)[1] if d.kind == "dent"]
    assert dents
    assert all(len(d.polygon) == 16 for d in dents)


def test_about_a_fifth_of_images_are_ok_and_the_rest_have_one_to_four_defects() -> None:
    counts = [len(defect_image(seed, W, H)[1]) for seed in range(100)]
    ok_fraction = counts.count(0) / len(counts)
    assert 0.05 <= ok_fraction <= 0.40
    assert max(counts) <= 4
    assert sum(counts) > 100  # most non-OK images keep all of their 1-4 defects


def test_all_defect_kinds_and_severities_occur() -> None:
    defects = [d for seed in range(60) for d in defect_image(seed, W, H)[1]]
    assert {d.kind for d in defects} == set(DEFECT_KINDS)
    assert {d.severity for d in defects} == {"minor", "major", "critical"}


def test_drawn_defects_change_the_pixels_inside_their_box() -> None:
    checked = 0
    for seed in range(30):
        image, defects = defect_image(seed, W, H)
        background, _ = _render(seed, W, H, draw_defects=False)
        diff = np.abs(np.asarray(image, np.float64) - np.asarray(_to_image(background), np.float64))
        if not defects:
            assert diff.max() == 0
        for defect in defects:
            x1, y1, x2, y2 = defect.box
            inside = diff[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))]
            assert inside.mean() > 0.2, defect
            assert inside.max() > 20, defect
            checked += 1
    assert checked > 20


def test_defect_images_yields_named_jpegs_matching_defect_image() -> None:
    items = list(defect_images(3, seed=10, width=W, height=H))
    assert [name for name, _, _ in items] == ["panel_0000.jpg", "panel_0001.jpg", "panel_0002.jpg"]
    for i, (_, data, defects) in enumerate(items):
        image, expected = defect_image(10 + i, W, H)
        assert data == encode(image)
        assert defects == expected
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.format == "JPEG"
            assert decoded.size == (W, H)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF"])
def test_encode_round_trips_through_pillow(fmt: str) -> None:
    image, _ = defect_image(7, W, H)
    with Image.open(io.BytesIO(encode(image, fmt))) as decoded:
        assert decoded.format == fmt
        assert decoded.size == image.size
        assert decoded.mode == "RGB"
        pixels = np.asarray(decoded, np.float64)
    original = np.asarray(image, np.float64)
    if fmt == "JPEG":
        assert np.abs(pixels - original).mean() < 3
    else:
        assert np.array_equal(pixels, original)


def test_encode_accepts_lowercase_and_rejects_unknown_formats() -> None:
    image, _ = defect_image(1, 64, 64)
    assert encode(image, "png") == encode(image, "PNG")
    with pytest.raises(ValueError, match="unsupported"):
        encode(image, "GIF87")


def test_grayscale16_is_dark_16_bit_and_uses_only_12_bits() -> None:
    image = grayscale16(5)
    assert image.mode == "I;16"
    assert image.size == (256, 256)
    pixels = np.asarray(image)
    assert pixels.max() <= 4095
    assert pixels.mean() < 2048
    assert pixels.std() > 10
    assert pixels.max() > 255  # really needs more than 8 bits


def test_grayscale16_is_deterministic_and_survives_png_and_tiff() -> None:
    image = grayscale16(9, 128, 96)
    assert np.array_equal(np.asarray(image), np.asarray(grayscale16(9, 128, 96)))
    for fmt in ("PNG", "TIFF"):
        with Image.open(io.BytesIO(encode(image, fmt))) as decoded:
            assert decoded.mode == "I;16"
            assert np.array_equal(np.asarray(decoded), np.asarray(image))
