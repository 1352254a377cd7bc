"""Export then import gives back the same labels, shapes (in pixels), tags and images."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from defectlab.datasets import DatasetHeader, DatasetItem, load
from defectlab.geometry import Shape, ShapeType
from tests.datasets.support import HEADER, datasets, export_to, item

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOX, POLYGON, POINTS = ShapeType.BOX, ShapeType.POLYGON, ShapeType.POINTS


def as_box(shape: Shape) -> Shape:
    x1, y1, x2, y2 = shape.bbox()
    return Shape.box(x1, y1, x2, y2, label=shape.label, attributes=shape.attributes)


def as_polygon(shape: Shape) -> Shape:
    if shape.type is not BOX:
        return shape
    (x1, y1), (x2, y2) = shape.points
    corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    return Shape.polygon(corners, label=shape.label, attributes=shape.attributes)


def check_round_trip(
    fmt: str,
    header: DatasetHeader,
    items: list[DatasetItem],
    *,
    convert: Callable[[Shape], Shape] = lambda shape: shape,
    attributes: bool = True,
    tags: bool = True,
    split: Callable[[str | None], str | None] = lambda split: split,
    tolerance: float = 1e-3,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, stats = export_to(Path(tmp), fmt, header, items)
        assert stats.items == stats.images == len(items)
        with load(fmt, path) as dataset:
            if fmt != "classification":  # it has no labels, only tags
                assert dataset.labels == header.label_names
            id_of = {label.name: label.id for label in header.labels}
            back = {entry.file_name: entry for entry in dataset.items}
            assert sorted(back) == sorted(entry.file_name for entry in items)
            for original in items:
                got = back[original.file_name]
                assert (got.width, got.height) == (original.width, original.height)
                assert got.split == split(original.split)
                assert list(got.tags) == (list(original.tags) if tags else [])
                assert got.image is not None and original.image is not None
                with got.image() as mine, original.image() as theirs:
                    assert mine.read() == theirs.read()
                expected = [convert(shape) for shape in original.shapes]
                assert len(got.shapes) == len(expected)
                for shape, want in zip(got.shapes, expected, strict=True):
                    assert shape.type is want.type
                    assert id_of[dataset.labels[shape.label]] == want.label
                    assert len(shape.points) == len(want.points)
                    for (x, y), (wx, wy) in zip(shape.points, want.points, strict=True):
                        assert abs(x - wx) <= tolerance and abs(y - wy) <= tolerance
                    assert dict(shape.attributes) == (dict(want.attributes) if attributes else {})


@FAST
@given(datasets(tags=False, attributes=False))
def test_yolo_detection(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("yolo", *data, convert=as_box, split=lambda split: split or "train")


@FAST
@given(datasets(tags=False, attributes=False))
def test_yolo_segmentation(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("yolo_seg", *data, convert=as_polygon, split=lambda split: split or "train")


@FAST
@given(datasets())
def test_coco(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("coco", *data)


@FAST
@given(datasets(kinds=(BOX,), integer=True, tags=False))
def test_voc(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("voc", *data, tolerance=0)


@FAST
@given(datasets())
def test_label_studio(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("labelstudio", *data, split=lambda split: None)


@FAST
@given(datasets(kinds=(BOX, POLYGON, POINTS)))
def test_cvat(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("cvat", *data)


@FAST
@given(datasets(kinds=()))
def test_classification(data: tuple[DatasetHeader, list[DatasetItem]]) -> None:
    check_round_trip("classification", *data)


@FAST
@given(datasets(), st.sampled_from(["coco", "cvat", "labelstudio"]))
def test_declared_labels_and_tags_survive_even_when_unused(
    data: tuple[DatasetHeader, list[DatasetItem]], fmt: str
) -> None:
    header, _items = data
    # CVAT declares tags as labels of type "tag" in one namespace: a tag named like a shape
    # label cannot be told apart there, so that case is out of this format's reach.
    assume(fmt != "cvat" or not set(header.tags) & set(header.label_names))
    with tempfile.TemporaryDirectory() as tmp:
        path, _stats = export_to(Path(tmp), fmt, header, [])
        with load(fmt, path) as dataset:
            assert dataset.labels == header.label_names
            assert list(dataset.header.tags) == list(header.tags)
            assert dataset.items == []


@pytest.mark.parametrize("fmt", ["coco", "cvat", "voc", "labelstudio"])
def test_label_colors_survive(fmt: str, tmp_path: Path) -> None:
    path, _stats = export_to(tmp_path, fmt, HEADER, [item()])
    with load(fmt, path) as dataset:
        assert [label.color for label in dataset.header.labels] == ["#ff0000", "#00ff00"]
