"""Behaviour of the one Shape type: normalisation, JSON form, validation and clipping."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from fractions import Fraction
from typing import Any
from unittest import mock

import numpy as np
import pytest
from django.conf import settings
from hypothesis import assume, given
from hypothesis import strategies as st

from defectlab import geometry
from defectlab.geometry import (
    EDGE_TOLERANCE,
    MAX_POINTS,
    MIN_EXTENT,
    Shape,
    ShapeError,
    ShapeType,
    shapes_from_json,
    shapes_from_stored,
    validate_shapes,
)

# Standalone runs (-p no:django) have no settings module; gettext needs configured settings.
if not settings.configured:
    settings.configure(USE_I18N=False)

W, H = 640, 480
SQUARE = [(10.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 50.0)]


def _box_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "box", "points": [[1, 2], [30, 40]], "label": 0}
    data.update(changes)
    return data


# --- construction and normal form ---------------------------------------------------------


def test_box_corners_in_any_order_normalise() -> None:
    expected = ((5.0, 2.0), (10.0, 20.0))
    for corners in [(5, 2, 10, 20), (10, 20, 5, 2), (10, 2, 5, 20), (5, 20, 10, 2)]:
        assert Shape.box(*corners, label=1).points == expected
    raw = Shape(ShapeType.BOX, ((10.0, 20.0), (5.0, 2.0)), label=1)
    assert raw.points == expected


def test_polygon_drops_closing_point() -> None:
    closed = Shape.polygon([*SQUARE, SQUARE[0]], label=0)
    assert closed.points == tuple(SQUARE)
    assert closed == Shape.polygon(SQUARE, label=0)


def test_constructors_refuse_wrong_point_counts() -> None:
    with pytest.raises(ShapeError, match="exactly 2 corner points"):
        Shape(ShapeType.BOX, ((0.0, 0.0),), label=0)
    with pytest.raises(ShapeError, match="at least 3 different vertices"):
        Shape.polygon([(0, 0), (1, 1), (0, 0)], label=0)
    with pytest.raises(ShapeError, match="at least one point"):
        Shape(ShapeType.POINTS, (), label=0)


def test_more_than_max_points_is_refused() -> None:
    Shape(ShapeType.POINTS, tuple((1.0, 1.0) for _ in range(MAX_POINTS)), label=0)
    with pytest.raises(ShapeError, match=f"at most {MAX_POINTS} points"):
        Shape(ShapeType.POINTS, tuple((1.0, 1.0) for _ in range(MAX_POINTS + 1)), label=0)


def test_numpy_inputs_become_plain_python_values() -> None:
    box = Shape.box(np.float32(1.5), np.int64(2), np.float64(3), 4, label=np.int64(7))  # type: ignore[arg-type]
    assert box.points == ((1.5, 2.0), (3.0, 4.0))
    assert type(box.label) is int and type(box.points[0][0]) is float
    polygon = Shape.polygon(np.array(SQUARE), label=0)
    assert polygon.points == tuple(SQUARE)


def test_shape_is_frozen_hashable_and_attributes_read_only() -> None:
    attributes = {"severity": "major"}
    shape = Shape.box(0, 0, 1, 1, label=0, attributes=attributes)
    attributes["severity"] = "minor"  # the caller's dict is copied, not shared
    assert shape.attributes == {"severity": "major"}
    with pytest.raises(TypeError):
        shape.attributes["severity"] = "minor"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        shape.label = 2  # type: ignore[misc]
    twin = Shape.box(1, 1, 0, 0, label=0, attributes={"severity": "major"})
    assert shape == twin and len({shape, twin}) == 1


def test_bbox_and_area() -> None:
    assert Shape.box(2, 3, 12, 8, label=0).area() == 50.0
    clockwise = Shape.polygon(list(reversed(SQUARE)), label=0)
    assert clockwise.area() == 1600.0
    assert clockwise.bbox() == (10.0, 10.0, 50.0, 50.0)
    points = Shape(ShapeType.POINTS, ((3.0, 9.0), (7.0, 1.0)), label=0)
    assert points.area() == 0.0
    assert points.bbox() == (3.0, 1.0, 7.0, 9.0)


# --- JSON form ----------------------------------------------------------------------------


def test_to_dict_omits_missing_score_and_id() -> None:
    assert Shape.box(30, 40, 1, 2, label=3).to_dict() == {
        "type": "box",
        "points": [[1.0, 2.0], [30.0, 40.0]],
        "label": 3,
        "attributes": {},
    }
    full = Shape.box(1, 2, 30, 40, label=3, attributes={"a": "b"}, score=0.9, id="c1")
    assert full.to_dict()["score"] == 0.9 and full.to_dict()["id"] == "c1"


def test_from_dict_accepts_null_optional_fields() -> None:
    shape = Shape.from_dict(_box_dict(attributes=None, score=None, id=None))
    assert shape == Shape.box(1, 2, 30, 40, label=0)


texts = st.text(max_size=12)
extras: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "attributes": st.dictionaries(texts, texts, max_size=3),
        "score": st.floats(0, 1),
        "id": st.text(max_size=64),
    },
)


@st.composite
def valid_boxes(draw: st.DrawFn) -> Shape:
    x1, x2 = draw(st.floats(0, W)), draw(st.floats(0, W))
    y1, y2 = draw(st.floats(0, H)), draw(st.floats(0, H))
    assume(abs(x1 - x2) >= MIN_EXTENT and abs(y1 - y2) >= MIN_EXTENT)
    return Shape.box(x1, y1, x2, y2, label=draw(st.integers(0, 10**6)), **draw(extras))


@st.composite
def valid_polygons(draw: st.DrawFn) -> Shape:
    # Vertices at increasing angles around a centre, never more than 180 degrees apart, always
    # outline a simple polygon: a generator of valid shapes that needs no filtering.
    cx, cy = draw(st.floats(150, W - 150)), draw(st.floats(150, H - 150))
    count = draw(st.integers(3, 40))
    step = 2 * math.pi / count
    jitters = draw(st.lists(st.floats(0, 0.4), min_size=count, max_size=count))
    radii = draw(st.lists(st.floats(1, 140), min_size=count, max_size=count))
    points = [
        (cx + r * math.cos((k + j) * step), cy + r * math.sin((k + j) * step))
        for k, (j, r) in enumerate(zip(jitters, radii, strict=True))
    ]
    return Shape.polygon(points, label=draw(st.integers(0, 10**6)), **draw(extras))


@given(st.one_of(valid_boxes(), valid_polygons()))
def test_to_dict_from_dict_round_trip(shape: Shape) -> None:
    shape.validate(W, H)  # the generators only make valid shapes; validate must agree
    wire = json.loads(json.dumps(shape.to_dict()))
    again = Shape.from_dict(wire)
    assert again == shape
    assert again.to_dict() == shape.to_dict()


@given(st.lists(st.one_of(valid_boxes(), valid_polygons()), max_size=4))
def test_stored_shapes_read_back_as_the_checked_ones(shapes: list[Shape]) -> None:
    # What the exports read: shapes saved as to_dict wrote them (JSON in the database).
    stored = json.loads(json.dumps([shape.to_dict() for shape in shapes]))
    again = shapes_from_stored(stored)
    assert again == shapes_from_json(stored) == shapes
    assert [shape.to_dict() for shape in again] == [shape.to_dict() for shape in shapes]
    assert all(type(x) is float for shape in again for point in shape.points for x in point)


@pytest.mark.parametrize(
    "data",
    [
        [_box_dict(points=[[30, 40], [1, 2]])],  # corners not in order: normalised
        [{"type": "polygon", "points": [*SQUARE, SQUARE[0]], "label": 1}],  # closing vertex
        [{"type": "points", "points": [[1, 2]], "label": 0}],
        [_box_dict(attributes={"size": "large"}, score=1, id="a")],
    ],
)
def test_stored_shapes_in_another_form_are_parsed_as_from_json(data: list[Any]) -> None:
    assert shapes_from_stored(data) == shapes_from_json(data)
    assert [s.to_dict() for s in shapes_from_stored(data)] == [
        s.to_dict() for s in shapes_from_json(data)
    ]


@pytest.mark.parametrize(
    "data",
    [
        [_box_dict(), _box_dict(label=True)],
        [_box_dict(points=[[1, 2]])],
        [{"type": "circle", "points": [[1, 2]], "label": 0}],
        [{"points": [[1, 2], [3, 4]], "label": 0}],
        [_box_dict(points=[[1, "x"], [3, 4]])],
        "not a list",
    ],
)
def test_stored_shapes_that_are_wrong_raise_as_from_json(data: Any) -> None:
    with pytest.raises(ShapeError) as expected:
        shapes_from_json(data)
    with pytest.raises(ShapeError) as stored:
        shapes_from_stored(data)
    assert str(stored.value) == str(expected.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "circle"}, "type must be one of: box, polygon, points"),
        ({"type": 1}, "type must be one of"),
        ({"points": "0,0,1,1"}, "list of [x, y] pairs"),
        ({"points": [[0, 0], [1]]}, "list of [x, y] pairs"),
        ({"points": [[True, 0], [1, 1]]}, "list of [x, y] pairs"),
        ({"points": [["1", 0], [1, 1]]}, "list of [x, y] pairs"),
        ({"points": None}, "list of [x, y] pairs"),
        ({"points": [[math.nan, 0], [1, 1]]}, "finite number"),
        ({"points": [[0, -math.inf], [1, 1]]}, "finite number"),
        ({"points": [[10**400, 0], [1, 1]]}, "finite number"),
        ({"label": True}, "label must be a whole number"),
        ({"label": -1}, "label must be a whole number"),
        ({"label": 1.0}, "label must be a whole number"),
        ({"label": "3"}, "label must be a whole number"),
        ({"attributes": ["severity"]}, "Attribute names and values"),
        ({"attributes": {"severity": 2}}, "Attribute names and values"),
        ({"attributes": {"note": "x" * 101}}, "at most 100 characters"),
        ({"score": True}, "score must be a number from 0 to 1"),
        ({"score": math.nan}, "score must be a number from 0 to 1"),
        ({"score": 1.5}, "score must be a number from 0 to 1"),
        ({"score": "0.5"}, "score must be a number from 0 to 1"),
        ({"id": 5}, "id must be text of at most 64"),
        ({"id": "x" * 65}, "id must be text of at most 64"),
        ({"scroe": 0.5}, 'Unknown field "scroe"'),
    ],
)
def test_from_dict_rejects_bool_and_nan(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ShapeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Shape.from_dict(_box_dict(**changes))


def test_from_dict_rejects_nan_from_json_text() -> None:
    wire = json.loads('{"type": "box", "points": [[NaN, 0], [1, 1]], "label": 0}')
    with pytest.raises(ShapeError, match="finite number"):
        Shape.from_dict(wire)


@pytest.mark.parametrize("field", ["type", "points", "label"])
def test_from_dict_names_a_missing_field(field: str) -> None:
    data = _box_dict()
    del data[field]
    with pytest.raises(ShapeError, match=f'field "{field}" is missing'):
        Shape.from_dict(data)


def test_from_dict_refuses_non_objects() -> None:
    with pytest.raises(ShapeError, match="must be a JSON object"):
        Shape.from_dict([["box"]])  # type: ignore[arg-type]


# --- validation against an image -----------------------------------------------------------


def test_shape_outside_image_is_refused() -> None:
    with pytest.raises(ShapeError, match=r"point \(641, 20\) is outside the 640 by 480 image"):
        Shape.box(10, 10, 641, 20, label=0).validate(W, H)
    with pytest.raises(ShapeError, match="outside"):
        Shape(ShapeType.POINTS, ((5.0, -3.0),), label=0).validate(W, H)
    with pytest.raises(ShapeError, match="outside"):
        Shape.polygon([(10, 10), (20, 10), (20, 481)], label=0).validate(W, H)


def test_half_pixel_overshoot_is_tolerated() -> None:
    t = EDGE_TOLERANCE
    Shape.box(-t, -t, W + t, H + t, label=0).validate(W, H)
    with pytest.raises(ShapeError, match="outside"):
        Shape.box(-t - 0.01, 0, 10, 10, label=0).validate(W, H)


def test_box_without_area_is_refused() -> None:
    for box in [Shape.box(5, 5, 5, 30, label=0), Shape.box(5, 5, 30, 5 + MIN_EXTENT / 2, label=0)]:
        with pytest.raises(ShapeError, match="box has no area"):
            box.validate(W, H)
    Shape.box(5, 5, 5 + MIN_EXTENT, 5 + MIN_EXTENT, label=0).validate(W, H)


def test_concave_polygon_is_accepted() -> None:
    Shape.polygon([(0, 0), (40, 0), (40, 40), (20, 10), (0, 40)], label=0).validate(W, H)


@pytest.mark.parametrize(
    "points",
    [
        [(0, 0), (20, 20), (20, 0), (0, 20)],  # bow tie
        [(0, 0), (30, 0), (30, 30), (15, 0), (0, 30)],  # vertex resting on another edge
        [(0, 0), (30, 0), (30, 30), (0, 0), (0, 30), (-0.1, 30)],  # repeated vertex, not adjacent
        [(0, 0), (30, 0), (10, 0), (10, 20)],  # outline folding back over itself
    ],
)
def test_polygon_self_intersection_is_refused(points: list[tuple[float, float]]) -> None:
    shifted = [(x + 100, y + 100) for x, y in points]
    with pytest.raises(ShapeError, match="crosses or touches itself"):
        Shape.polygon(shifted, label=0).validate(W, H)


def test_polygon_repeated_vertex_in_a_row_is_refused() -> None:
    with pytest.raises(ShapeError, match=r"same vertex twice in a row at \(50, 10\)"):
        Shape.polygon([(10, 10), (50, 10), (50, 10), (50, 50)], label=0).validate(W, H)


def test_polygon_with_two_distinct_vertices_is_refused() -> None:
    with pytest.raises(ShapeError, match="at least 3 different vertices"):
        Shape.polygon([(10, 10), (50, 10), (10, 10), (50, 10)], label=0).validate(W, H)


def test_collinear_polygon_is_refused() -> None:
    with pytest.raises(ShapeError, match="polygon has no area"):
        Shape.polygon([(10, 10), (20, 20), (30, 30)], label=0).validate(W, H)


def test_large_polygon_validates() -> None:
    angles = np.linspace(0, 2 * np.pi, MAX_POINTS, endpoint=False)
    radii = 200 + 30 * np.sin(angles * 37)
    outline = np.c_[320 + radii * np.cos(angles), 240 + radii * np.sin(angles)]
    Shape.polygon(outline, label=0).validate(W, H)
    outline[5000] = outline[10]  # one vertex moved onto another: no longer simple
    with pytest.raises(ShapeError, match="crosses or touches itself"):
        Shape.polygon(outline, label=0).validate(W, H)


def _segments_meet(a: Any, b: Any, c: Any, d: Any) -> bool:
    """Exact parametric test, deliberately unlike the orientation test in the module."""

    def cross(u: Any, v: Any) -> Fraction:
        return Fraction(u[0]) * v[1] - Fraction(u[1]) * v[0]

    r, s, ca = (b[0] - a[0], b[1] - a[1]), (d[0] - c[0], d[1] - c[1]), (c[0] - a[0], c[1] - a[1])
    denominator = cross(r, s)
    if denominator:
        t, u = cross(ca, s) / denominator, cross(ca, r) / denominator
        return 0 <= t <= 1 and 0 <= u <= 1
    if cross(ca, r):
        return False  # parallel, on different lines
    length = Fraction(r[0] * r[0] + r[1] * r[1])
    t0 = (ca[0] * r[0] + ca[1] * r[1]) / length
    t1 = ((d[0] - a[0]) * r[0] + (d[1] - a[1]) * r[1]) / length
    return max(t0, t1) >= 0 and min(t0, t1) <= 1


def _crosses_brute_force(points: list[tuple[int, int]]) -> bool:
    n = len(points)
    edges = [(points[k], points[(k + 1) % n]) for k in range(n)]
    return any(
        _segments_meet(*edges[i], *edges[j])
        for i in range(n)
        for j in range(i + 2, n)
        if j - i != n - 1
    )


@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=4, max_size=12),
    st.sampled_from([1, 5, 1 << 18]),
)
def test_crossing_check_matches_brute_force(points: list[tuple[int, int]], batch: int) -> None:
    # A small integer grid makes touching and collinear overlaps common, the cases that break
    # naive tests; small batches exercise the batching path of the sweep.
    assume(all(points[k] != points[k - 1] for k in range(len(points))))
    with mock.patch.object(geometry, "_PAIR_BATCH", batch):
        found = geometry._edges_cross(np.array(points, dtype=np.float64))
    assert found == _crosses_brute_force(points)


# --- clipping ----------------------------------------------------------------------------


@given(
    st.lists(st.floats(-2000, 2000), min_size=4, max_size=4),
    st.integers(1, 2000),
    st.integers(1, 2000),
)
def test_clipped_box_stays_within_image(corners: list[float], width: int, height: int) -> None:
    clipped = Shape.box(*corners, label=0).clipped(width, height)
    x1, y1, x2, y2 = clipped.bbox()
    assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
    if x2 - x1 >= MIN_EXTENT and y2 - y1 >= MIN_EXTENT:
        clipped.validate(width, height)


@given(valid_polygons(), st.floats(-300, 300), st.floats(-300, 300))
def test_clipped_polygon_stays_within_image(shape: Shape, dx: float, dy: float) -> None:
    moved = dataclasses.replace(shape, points=tuple((x + dx, y + dy) for x, y in shape.points))
    try:
        clipped = moved.clipped(W, H)
    except ShapeError:
        return  # collapsed onto the border: nothing of it was inside the image
    x1, y1, x2, y2 = clipped.bbox()
    assert x1 >= 0 and x2 <= W and y1 >= 0 and y2 <= H


def test_clipped_polygon_drops_vertices_merged_by_clamping() -> None:
    spill = Shape.polygon([(-10, -10), (-5, -20), (50, 0), (50, 50)], label=0)
    clipped = spill.clipped(W, H)
    assert clipped.points == ((0.0, 0.0), (50.0, 0.0), (50.0, 50.0))
    clipped.validate(W, H)
    with pytest.raises(ShapeError, match="at least 3 different vertices"):
        Shape.polygon([(-10, -10), (-5, -20), (-1, -3)], label=0).clipped(W, H)


# --- lists of shapes -----------------------------------------------------------------------


def test_validate_shapes_names_the_index() -> None:
    good = Shape.box(1, 1, 10, 10, label=0)
    bad = Shape.box(1, 1, 1, 10, label=0)
    with pytest.raises(ShapeError) as caught:
        validate_shapes([good, good, bad], W, H)
    assert caught.value.index == 2
    assert str(caught.value) == "Shape 3: The box has no area: its width or height is zero."
    validate_shapes([good, good], W, H)


def test_shapes_from_json_names_the_index() -> None:
    assert shapes_from_json([_box_dict()]) == [Shape.box(1, 2, 30, 40, label=0)]
    with pytest.raises(ShapeError) as caught:
        shapes_from_json([_box_dict(), "box"])
    assert caught.value.index == 1
    assert str(caught.value) == "Shape 2: A shape must be a JSON object."
    with pytest.raises(ShapeError, match="must be given as a list") as caught:
        shapes_from_json({"shapes": []})
    assert caught.value.index is None


def test_shape_error_keeps_index_through_pickle() -> None:
    error = pickle.loads(pickle.dumps(ShapeError("The box has no area.", index=4)))
    assert error.index == 4 and str(error) == "Shape 5: The box has no area."


def test_shape_errors_need_no_django_settings() -> None:
    """The inference engine and scripts use shapes without a Django project: a refused shape
    raises ShapeError with its message, not Django's ImproperlyConfigured."""
    import os
    import subprocess
    import sys

    script = (
        "from defectlab.geometry import Shape, ShapeError\n"
        "try:\n"
        "    Shape.box(0, 0, 0, 5, label='scratch').validate(10, 10)\n"
        "except ShapeError as error:\n"
        "    print('refused:', error)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: ")


def _outcome(check: Any, points: Any) -> str | None:
    try:
        check(points)
    except ShapeError as error:
        return str(error)
    return None


@given(
    st.lists(
        st.tuples(st.integers(0, 6).map(float), st.integers(0, 6).map(float)),
        min_size=3,
        max_size=geometry._SMALL_POLYGON,
    )
)
def test_small_polygons_are_judged_as_the_numpy_check_judges_them(points: Any) -> None:
    # A small grid makes repeated vertices, collinear runs, touching and crossing edges common.
    small = _outcome(geometry._check_small_polygon, tuple(points))
    large = _outcome(geometry._check_polygon, np.asarray(points, dtype=np.float64))
    assert small == large


def test_a_shape_inside_the_image_is_its_own_clipped_shape() -> None:
    shape = Shape.box(1, 2, 30, 40, label=0)
    assert shape.clipped(100, 100) is shape
    assert shape.clipped(20, 100).points == ((1, 2), (20, 40))
