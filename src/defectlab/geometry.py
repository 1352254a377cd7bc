"""The one shape type of DefectLab: boxes, polygons and point sets in image pixel coordinates.

Human annotations, stored predictions and raw model outputs all pass through `Shape`, always in
original-image pixels (x right, y down, origin at the top-left corner, an image of width W spans
x in [0, W]). Keeping a single type means the JSON form, the validation rules and the geometry
are written once, so a prediction can be reviewed, compared with or promoted to an annotation
without conversion code, and a rule tightened here holds on every path that accepts shapes.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn, cast

import numpy as np
from django.conf import settings
from django.utils.translation import gettext


def _(message: str) -> str:
    """``message`` in the active language where Django is set up; as written where it is not
    (the inference engine and scripts use shapes without a Django project)."""
    return gettext(message) if settings.configured else message


MAX_POINTS = 10_000
# Clients convert between screen and image pixels and round on the way, so a vertex snapped to
# the far border can land up to half a pixel outside. To the person drawing it that is still the
# border pixel, and refusing it would reject work that looks correct on screen.
EDGE_TOLERANCE = 0.5
MIN_EXTENT = 1e-6
MAX_TEXT = 100
MAX_ID = 64
_FIELDS = ("type", "points", "label", "attributes", "score", "id")
# Edge pairs tested per numpy batch; bounds memory when a polygon has many overlapping edges.
_PAIR_BATCH = 1 << 18


class ShapeType(StrEnum):
    BOX = "box"
    POLYGON = "polygon"
    POINTS = "points"


_TYPES = {kind.value: kind for kind in ShapeType}


class ShapeError(ValueError):
    """A shape that cannot be accepted; `str()` is a sentence for the person who drew it.

    `index` is the shape's 0-based position in a list once `validate_shapes` or
    `shapes_from_json` has set it; the message then names the shape counting from 1.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index

    def __str__(self) -> str:
        if self.index is None:
            return self.message
        return _("Shape %(number)s: %(problem)s") % {
            "number": self.index + 1,
            "problem": self.message,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling replays only args and would lose the keyword-only index.
        return (type(self), (self.message,), {"index": self.index})


def _fail(message: str, **params: object) -> NoReturn:
    raise ShapeError(message % params if params else message)


def _num(value: float) -> str:
    return format(float(value), ".10g")


class _Attributes(Mapping[str, str]):
    """Read-only and hashable, so a frozen Shape can be hashed, cached and shared safely."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)


_NO_ATTRIBUTES = _Attributes()


def _is_real(value: object) -> bool:
    kind = type(value)
    if kind is float or kind is int:  # the common case, without the ABC's slower check
        return True
    # bool is an int subclass; True as a coordinate or label is always a client bug.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _coordinate(value: object) -> float:
    if type(value) is float:  # the common case, in one step
        if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            return value
        _fail(_("Every coordinate must be a finite number."))
    if not _is_real(value):
        _not_pairs()
    try:
        number = float(cast(float, value))
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        _fail(_("Every coordinate must be a finite number."))
    return number


def _not_pairs() -> NoReturn:
    _fail(_("Points must be a list of [x, y] pairs of numbers."))


def _too_many(count: int) -> NoReturn:
    _fail(
        _("A shape can have at most %(max)s points, this one has %(count)s."),
        max=MAX_POINTS,
        count=count,
    )


def _coerce_points(raw: object) -> tuple[tuple[float, float], ...]:
    # Model code hands over numpy arrays; tolist() turns them into plain Python numbers.
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, list | tuple):
        _not_pairs()
    # Refuse oversized input before converting it; +1 leaves room for a polygon's closing point.
    if len(raw) > MAX_POINTS + 1:
        _too_many(len(raw))
    points = []
    for pair in raw:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:  # a tuple: faster than a union
            _not_pairs()
        x, y = pair
        points.append((_coordinate(x), _coordinate(y)))
    return tuple(points)


@dataclass(frozen=True, slots=True)
class Shape:
    """One box, polygon or point set. Construction checks everything that does not depend on
    an image and normalises the form (box corners ordered, closing polygon point dropped);
    `validate()` checks it against one image and refuses degenerate geometry."""

    type: ShapeType
    points: tuple[tuple[float, float], ...]
    label: int
    attributes: Mapping[str, str] = _NO_ATTRIBUTES
    score: float | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        kind = _TYPES.get(self.type) if isinstance(self.type, str) else None
        if kind is None:
            _fail(
                _("The shape type must be one of: %(choices)s."),
                choices=", ".join(ShapeType),
            )
        points = _coerce_points(self.points)
        if kind is ShapeType.BOX:
            if len(points) != 2:
                _fail(_("A box needs exactly 2 corner points."))
            (ax, ay), (bx, by) = points
            points = ((min(ax, bx), min(ay, by)), (max(ax, bx), max(ay, by)))
        elif kind is ShapeType.POLYGON:
            if len(points) > 1 and points[0] == points[-1]:
                points = points[:-1]
            if len(points) < 3:
                _fail(_("A polygon needs at least 3 different vertices."))
        elif not points:
            _fail(_("A points shape needs at least one point."))
        if len(points) > MAX_POINTS:
            _too_many(len(points))

        label = self.label
        whole = type(label) is int or (  # the common case first, without the ABC's check
            isinstance(label, numbers.Integral) and not isinstance(label, bool)
        )
        if not whole or label < 0:
            _fail(_("The label must be a whole number, 0 or greater."))
        attributes = self.attributes
        if attributes is _NO_ATTRIBUTES or (type(attributes) is dict and not attributes):
            attributes = _NO_ATTRIBUTES  # the common case, checked by identity
        elif not isinstance(attributes, Mapping) or not all(
            isinstance(text, str) and len(text) <= MAX_TEXT
            for pair in attributes.items()
            for text in pair
        ):
            message = _("Attribute names and values must be text of at most %(max)s characters.")
            _fail(message, max=MAX_TEXT)
        score = self.score
        if score is not None:
            if not _is_real(score) or not 0.0 <= float(score) <= 1.0:  # NaN fails both bounds
                _fail(_("The score must be a number from 0 to 1."))
            score = float(score)
        if self.id is not None and (not isinstance(self.id, str) or len(self.id) > MAX_ID):
            _fail(_("The id must be text of at most %(max)s characters."), max=MAX_ID)

        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "label", int(label))
        if not isinstance(attributes, _Attributes):
            attributes = _Attributes(attributes)
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "score", score)

    @classmethod
    def box(
        cls,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        *,
        label: int,
        attributes: Mapping[str, str] | None = None,
        score: float | None = None,
        id: str | None = None,
    ) -> Shape:
        """A box from two opposite corners given in any order."""
        return cls(ShapeType.BOX, ((x1, y1), (x2, y2)), label, attributes or {}, score, id)

    @classmethod
    def polygon(
        cls,
        points: Sequence[Sequence[float]] | np.ndarray,
        *,
        label: int,
        attributes: Mapping[str, str] | None = None,
        score: float | None = None,
        id: str | None = None,
    ) -> Shape:
        """A polygon from its vertices; a closing vertex equal to the first is dropped."""
        return cls(ShapeType.POLYGON, cast(Any, points), label, attributes or {}, score, id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shape:
        """Parse the JSON form written by `to_dict`; raises ShapeError on malformed input."""
        if not isinstance(data, Mapping):
            _fail(_("A shape must be a JSON object."))
        for key in data:
            if key not in _FIELDS:
                # A misspelt optional field ("scroe") would otherwise vanish without a word.
                _fail(_('Unknown field "%(field)s".'), field=key)
        for key in ("type", "points", "label"):
            if key not in data:
                _fail(_('The field "%(field)s" is missing.'), field=key)
        attributes = data.get("attributes")
        return cls(
            data["type"],
            data["points"],
            data["label"],
            {} if attributes is None else attributes,
            data.get("score"),
            data.get("id"),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type.value,
            "points": [[x, y] for x, y in self.points],
            "label": self.label,
            "attributes": dict(self.attributes),
        }
        if self.score is not None:
            data["score"] = self.score
        if self.id is not None:
            data["id"] = self.id
        return data

    def bbox(self) -> tuple[float, float, float, float]:
        xs, ys = zip(*self.points, strict=True)
        return min(xs), min(ys), max(xs), max(ys)

    def area(self) -> float:
        if self.type is ShapeType.BOX:
            (x1, y1), (x2, y2) = self.points
            return (x2 - x1) * (y2 - y1)
        if self.type is ShapeType.POLYGON:
            return abs(_signed_area(np.asarray(self.points)))
        return 0.0

    def validate(self, width: int, height: int) -> None:
        """Raise ShapeError unless the shape lies on a `width` x `height` image and has a
        usable geometry: boxes with area, simple polygons (no crossings) with area."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        for x, y in self.points:
            if not (
                -EDGE_TOLERANCE <= x <= width + EDGE_TOLERANCE
                and -EDGE_TOLERANCE <= y <= height + EDGE_TOLERANCE
            ):
                message = _(
                    "The point (%(x)s, %(y)s) is outside the %(width)s by %(height)s image."
                )
                _fail(message, x=_num(x), y=_num(y), width=width, height=height)
        if self.type is ShapeType.BOX:
            (x1, y1), (x2, y2) = self.points
            if x2 - x1 < MIN_EXTENT or y2 - y1 < MIN_EXTENT:
                _fail(_("The box has no area: its width or height is zero."))
        elif self.type is ShapeType.POLYGON:
            if len(self.points) <= _SMALL_POLYGON:
                _check_small_polygon(self.points)
            else:
                _check_polygon(np.asarray(self.points, dtype=np.float64))

    def clipped(self, width: float, height: float) -> Shape:
        """The shape with every point clamped into the image.

        Meant for model outputs that spill over the border. A box entirely outside comes back
        without area (validate() refuses it). A polygon loses the repeated vertices clamping
        creates; if fewer than three remain, it lay outside the image and ShapeError is raised.
        """
        points = [
            (min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height)))
            for x, y in self.points
        ]
        if self.type is ShapeType.POLYGON:
            points = [p for k, p in enumerate(points) if p != points[k - 1]]
        clamped = tuple(points)
        if clamped == self.points:
            return self  # all inside already: the same (immutable) shape
        return dataclasses.replace(self, points=clamped)


def _signed_area(pts: np.ndarray) -> float:
    # Shifting to the first vertex keeps precision for small polygons far from the origin.
    rel = pts - pts[0]
    nxt = np.roll(rel, -1, axis=0)
    return 0.5 * float(np.sum(rel[:, 0] * nxt[:, 1] - nxt[:, 0] * rel[:, 1]))


def _check_polygon(pts: np.ndarray) -> None:
    repeated = np.flatnonzero((pts == np.roll(pts, -1, axis=0)).all(axis=1))
    if repeated.size:
        x, y = pts[repeated[0]]
        _fail(
            _("The polygon has the same vertex twice in a row at (%(x)s, %(y)s)."),
            x=_num(x),
            y=_num(y),
        )
    if len(np.unique(pts, axis=0)) < 3:
        _fail(_("A polygon needs at least 3 different vertices."))
    # Crossings first: a figure-eight can have zero net area, and "crosses itself" is the
    # message that tells the person what is actually wrong.
    if _edges_cross(pts):
        _fail(_("The polygon's outline crosses or touches itself."))
    if abs(_signed_area(pts)) <= MIN_EXTENT:
        _fail(_("The polygon has no area: its vertices lie on one line."))


# Up to this many vertices a polygon is checked in plain Python (`_check_small_polygon`): numpy's
# per-call overhead is most of the cost for the few vertices of a typical defect outline.
_SMALL_POLYGON = 24


def _check_small_polygon(points: Sequence[tuple[float, float]]) -> None:
    """`_check_polygon` for a few vertices, in plain Python: the same checks, in the same
    order, with the same messages (the sums of the area may round differently in the last bit)."""
    n = len(points)
    for k in range(n):
        if points[k] == points[(k + 1) % n]:
            x, y = points[k]
            _fail(
                _("The polygon has the same vertex twice in a row at (%(x)s, %(y)s)."),
                x=_num(x),
                y=_num(y),
            )
    if len(set(points)) < 3:
        _fail(_("A polygon needs at least 3 different vertices."))
    if n >= 4:
        edges = [
            (a, b, min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
            for a, b in zip(points, [*points[1:], points[0]], strict=True)
        ]
        for i in range(n - 2):
            a, b, lx, ly, hx, hy = edges[i]
            for j in range(i + 2, n if i else n - 1):  # not adjacent: j ≠ i ± 1 (mod n)
                c, d, mx, my, kx, ky = edges[j]
                if lx > kx or mx > hx or ly > ky or my > hy:
                    continue
                if _segments_meet(a, b, c, d, (lx, ly, hx, hy), (mx, my, kx, ky)):
                    _fail(_("The polygon's outline crosses or touches itself."))
    x0, y0 = points[0]
    area = 0.0
    for k in range(n):
        ax, ay = points[k]
        bx, by = points[(k + 1) % n]
        area += (ax - x0) * (by - y0) - (bx - x0) * (ay - y0)
    if abs(0.5 * area) <= MIN_EXTENT:
        _fail(_("The polygon has no area: its vertices lie on one line."))


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _segments_meet(
    a: tuple[float, float],
    b: tuple[float, float],
    c: tuple[float, float],
    d: tuple[float, float],
    ab: tuple[float, float, float, float],
    cd: tuple[float, float, float, float],
) -> bool:
    """`_any_touch` for one pair of edges whose boxes ``ab`` / ``cd`` (low x, low y, high x,
    high y) overlap: a proper crossing, or an end resting on the other edge."""

    def orientation(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> int:
        return _sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    o1, o2 = orientation(a, b, c), orientation(a, b, d)
    o3, o4 = orientation(c, d, a), orientation(c, d, b)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True

    def within(box: tuple[float, float, float, float], p: tuple[float, float]) -> bool:
        return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]

    return (
        (o1 == 0 and within(ab, c))
        or (o2 == 0 and within(ab, d))
        or (o3 == 0 and within(cd, a))
        or (o4 == 0 and within(cd, b))
    )


def _edges_cross(pts: np.ndarray) -> bool:
    """Whether two non-adjacent edges of the closed ring share any point.

    Sweep-and-prune: edges are sorted by their low end along one axis and each is tested only
    against later edges whose range overlaps it, in numpy batches. Typical outlines then cost
    far less than all n^2 pairs; the worst case (every edge spanning the image) stays O(n^2).
    """
    n = len(pts)
    if n < 4:  # in a triangle every pair of edges is adjacent
        return False
    end = np.roll(pts, -1, axis=0)
    low, high = np.minimum(pts, end), np.maximum(pts, end)
    sweeps = []
    for axis in (0, 1):  # sweep along whichever axis leaves fewer pairs to test
        order = np.argsort(low[:, axis], kind="stable")
        counts = np.searchsorted(low[order, axis], high[order, axis], side="right")
        counts -= np.arange(1, n + 1)
        sweeps.append((int(counts.sum()), axis, order, counts))
    _pairs, axis, order, counts = min(sweeps, key=lambda sweep: sweep[0])
    # Plain 1-D columns: gathering and comparing them is much faster than (n, 2) rows.
    columns = (*pts.T, *end.T, *low.T, *high.T)
    cumulative = np.cumsum(counts)
    first = 0
    while first < n:
        done = int(cumulative[first - 1]) if first else 0
        stop = max(first + 1, int(np.searchsorted(cumulative, done + _PAIR_BATCH, side="right")))
        per_row = counts[first:stop]
        size = int(per_row.sum())
        if size:
            rows = np.repeat(np.arange(first, stop), per_row)
            cols = rows + 1 + np.arange(size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
            if _any_touch(columns, 1 - axis, order[rows], order[cols]):
                return True
        first = stop
    return False


def _any_touch(columns: tuple[np.ndarray, ...], other: int, i: np.ndarray, j: np.ndarray) -> bool:
    """Whether any edge pair (i[k], j[k]) meets; the pairs already overlap on the swept axis."""
    n = len(columns[0])
    gap = np.abs(i - j)
    apart = (gap != 1) & (gap != n - 1)
    i, j = i[apart], j[apart]
    low, high = columns[4 + other], columns[6 + other]
    keep = (low[i] <= high[j]) & (low[j] <= high[i])
    i, j = i[keep], j[keep]
    if not i.size:
        return False
    ax, ay, bx, by, lx, ly, hx, hy = (column[i] for column in columns)
    cx, cy, dx, dy, mx, my, kx, ky = (column[j] for column in columns)
    o1, o2 = _orientation(ax, ay, bx, by, cx, cy), _orientation(ax, ay, bx, by, dx, dy)
    o3, o4 = _orientation(cx, cy, dx, dy, ax, ay), _orientation(cx, cy, dx, dy, bx, by)
    # Touching counts too: a vertex resting on another edge makes the outline non-simple.
    meet = (o1 * o2 < 0) & (o3 * o4 < 0)
    meet |= (o1 == 0) & (lx <= cx) & (cx <= hx) & (ly <= cy) & (cy <= hy)
    meet |= (o2 == 0) & (lx <= dx) & (dx <= hx) & (ly <= dy) & (dy <= hy)
    meet |= (o3 == 0) & (mx <= ax) & (ax <= kx) & (my <= ay) & (ay <= ky)
    meet |= (o4 == 0) & (mx <= bx) & (bx <= kx) & (my <= by) & (by <= ky)
    return bool(meet.any())


def _orientation(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, px: np.ndarray, py: np.ndarray
) -> np.ndarray:
    return np.sign((bx - ax) * (py - ay) - (by - ay) * (px - ax))


def validate_shapes(shapes: Sequence[Shape], width: int, height: int) -> None:
    """Validate every shape; the error carries the failing shape's position in `index`."""
    for index, shape in enumerate(shapes):
        try:
            shape.validate(width, height)
        except ShapeError as error:
            error.index = index
            raise


def shapes_from_json(data: Any) -> list[Shape]:
    """Parse a JSON list of shapes; the error carries the failing shape's position."""
    if not isinstance(data, list):
        _fail(_("The shapes must be given as a list."))
    shapes = []
    for index, item in enumerate(data):
        try:
            shapes.append(Shape.from_dict(item))
        except ShapeError as error:
            error.index = index
            raise
    return shapes


_TYPES = {kind.value: kind for kind in ShapeType}


def shapes_from_stored(data: Any) -> list[Shape]:
    """Shapes read back from our own database, where every shape was saved in the form
    `to_dict` writes after `Shape` had checked it (annotations, predictions). Only that form is
    rebuilt (float coordinates, the type, the label, attributes), without checking everything
    again: the exports read tens of thousands of shapes, and re-checking each cost them more
    than the rest of their work. Data not in that form (unordered box corners, a closing
    polygon vertex, missing fields, a wrong type) is handed to `shapes_from_json`, which
    normalises it or raises ShapeError as it always did."""
    try:
        return [_stored(item) for item in data]
    except (KeyError, TypeError, ValueError, AttributeError):
        return shapes_from_json(data)


def _stored(data: Mapping[str, Any]) -> Shape:
    kind = _TYPES[data["type"]]
    points = tuple([(float(x), float(y)) for x, y in data["points"]])
    if kind is ShapeType.BOX:
        (x1, y1), (x2, y2) = points
        if x1 > x2 or y1 > y2:
            raise ValueError("box corners not in order")
    elif kind is ShapeType.POLYGON:
        if len(points) < 3 or points[0] == points[-1]:
            raise ValueError("not a stored polygon")
    elif not points:
        raise ValueError("no points")
    label = data["label"]
    if type(label) is not int or label < 0:
        raise ValueError("label")
    attributes = data.get("attributes")
    score = data.get("score")
    shape = object.__new__(Shape)
    setattr_ = object.__setattr__
    setattr_(shape, "type", kind)
    setattr_(shape, "points", points)
    setattr_(shape, "label", label)
    setattr_(shape, "attributes", _Attributes(attributes) if attributes else _NO_ATTRIBUTES)
    setattr_(shape, "score", None if score is None else float(score))
    setattr_(shape, "id", data.get("id"))
    return shape
