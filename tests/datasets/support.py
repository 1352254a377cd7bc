"""Shared helpers for the dataset format tests: images, archives, and hypothesis strategies."""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from PIL import Image

from defectlab.datasets import DatasetHeader, DatasetItem, DatasetLabel, ExportStats, export
from defectlab.geometry import Shape, ShapeType


@cache
def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


def opener(data: bytes) -> Callable[[], io.BytesIO]:
    return lambda: io.BytesIO(data)


def write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def export_to(
    tmp: Path, fmt: str, header: DatasetHeader, items: Iterable[DatasetItem], **options: Any
) -> tuple[Path, ExportStats]:
    path = tmp / f"{fmt}.zip"
    with path.open("wb") as out:
        stats = export(fmt, header, iter(items), out, **options)
    return path, stats


def item(
    file_name: str = "a.png",
    width: int = 100,
    height: int = 80,
    shapes: Iterable[Shape] = (),
    **fields: Any,
) -> DatasetItem:
    fields.setdefault("image", opener(png(width, height)))
    fields.setdefault("key", file_name)
    return DatasetItem(
        file_name=file_name, width=width, height=height, shapes=list(shapes), **fields
    )


HEADER = DatasetHeader(
    [DatasetLabel(11, "scratch", "#ff0000"), DatasetLabel(12, "dent", "#00ff00")],
    tags=["OK", "NG"],
)

# --- strategies -------------------------------------------------------------------------------

TEXT = st.text(st.sampled_from(list("abcxyzABQ019_- .划痕凹坑")), min_size=1, max_size=8)
NAMES = TEXT.map(str.strip).filter(bool)


@st.composite
def headers(draw: st.DrawFn, *, tags: bool = True) -> DatasetHeader:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    ids = draw(
        st.lists(st.integers(1, 10**6), min_size=len(names), max_size=len(names), unique=True)
    )
    colors = draw(
        st.lists(
            st.sampled_from(["#e53935", "#00aa11", "#123abc"]),
            min_size=len(names),
            max_size=len(names),
        )
    )
    tag_names = draw(st.lists(NAMES, max_size=3, unique=True)) if tags else []
    labels = [DatasetLabel(i, n, c) for i, n, c in zip(ids, names, colors, strict=True)]
    return DatasetHeader(labels, tags=tag_names)


def _coordinate(draw: st.DrawFn, low: float, high: float, integer: bool) -> float:
    if integer:
        return float(draw(st.integers(math.ceil(low), math.floor(high))))
    return draw(st.floats(low, high, allow_nan=False, allow_infinity=False))


@st.composite
def boxes(draw: st.DrawFn, width: int, height: int, label: int, integer: bool = False) -> Shape:
    x1 = _coordinate(draw, 0, width - 1, integer)
    y1 = _coordinate(draw, 0, height - 1, integer)
    x2 = _coordinate(draw, x1 + 1, width, integer)
    y2 = _coordinate(draw, y1 + 1, height, integer)
    return Shape.box(x1, y1, x2, y2, label=label)


@st.composite
def polygons(draw: st.DrawFn, width: int, height: int, label: int) -> Shape:
    """Star-shaped around a centre with well-separated vertices: simple, and still simple
    after the rounding of normalised formats."""
    cx = draw(st.floats(width * 0.25, width * 0.75))
    cy = draw(st.floats(height * 0.25, height * 0.75))
    reach = min(cx, width - cx, cy, height - cy)
    count = draw(st.integers(3, 8))
    gaps = draw(st.lists(st.floats(0.5, 1.0), min_size=count, max_size=count))
    start = draw(st.floats(0, 2 * math.pi))
    radii = draw(st.lists(st.floats(0.4, 1.0), min_size=count, max_size=count))
    points, angle = [], start
    for gap, radius in zip(gaps, radii, strict=True):
        points.append(
            (cx + reach * radius * math.cos(angle), cy + reach * radius * math.sin(angle))
        )
        angle += gap / sum(gaps) * 2 * math.pi
    shape = Shape.polygon(points, label=label)
    shape.validate(width, height)
    return shape


@st.composite
def point_sets(draw: st.DrawFn, width: int, height: int, label: int) -> Shape:
    count = draw(st.integers(1, 3))
    points = [(draw(st.floats(0, width)), draw(st.floats(0, height))) for _ in range(count)]
    return Shape(ShapeType.POINTS, tuple(points), label)


@st.composite
def datasets(
    draw: st.DrawFn,
    *,
    kinds: tuple[ShapeType, ...] = (ShapeType.BOX, ShapeType.POLYGON),
    integer: bool = False,
    tags: bool = True,
    attributes: bool = True,
) -> tuple[DatasetHeader, list[DatasetItem]]:
    header = draw(headers(tags=tags))
    items = []
    for index in range(draw(st.integers(0, 4))):
        width, height = draw(st.integers(32, 1000)), draw(st.integers(32, 1000))
        shapes = []
        for _ in range(draw(st.integers(0, 4)) if kinds else 0):
            label = draw(st.sampled_from(header.labels)).id
            kind = draw(st.sampled_from(kinds))
            if kind is ShapeType.BOX:
                shape = draw(boxes(width, height, label, integer))
            elif kind is ShapeType.POLYGON:
                shape = draw(polygons(width, height, label))
            else:
                shape = draw(point_sets(width, height, label))
            if attributes:
                extra = draw(st.dictionaries(NAMES, TEXT, max_size=2))
                shape = Shape(shape.type, shape.points, shape.label, extra)
            shapes.append(shape)
        item_tags = draw(st.lists(st.sampled_from(header.tags), unique=True)) if header.tags else []
        name = f"img{index}_{draw(NAMES)}.png"
        items.append(
            DatasetItem(
                key=str(index + 1),
                file_name=name,
                width=width,
                height=height,
                shapes=shapes,
                tags=item_tags,
                split=draw(st.sampled_from([None, "train", "val", "test"])),
                image=opener(png(width, height)),
            )
        )
    return header, items
