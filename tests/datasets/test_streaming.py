"""Exports stream: items are pulled one at a time and memory does not grow with the images."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Iterator

import pytest

from defectlab.datasets import DatasetItem, export
from defectlab.geometry import Shape
from tests.datasets.support import HEADER, opener

IMAGE = os.urandom(32 * 1024)  # incompressible, like a real JPEG


class Discard(io.RawIOBase):
    """An output that cannot seek and keeps nothing (an HTTP response, say)."""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


def items(count: int) -> Iterator[DatasetItem]:
    for index in range(count):
        yield DatasetItem(
            key=str(index),
            file_name=f"img_{index:05d}.jpg",
            width=640,
            height=480,
            shapes=[
                Shape.box(10, 10, 200, 100, label=11, attributes={"severity": "minor"}),
                Shape.polygon([(300, 300), (400, 310), (350, 420)], label=12),
            ],
            tags=["NG"],
            split=("train", "val", "test")[index % 3],
            image=opener(IMAGE),
        )


def peak(fmt: str, count: int) -> int:
    tracemalloc.start()
    try:
        stats = export(fmt, HEADER, items(count), Discard())
        _current, top = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.items == stats.images == count
    return top


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc", "labelstudio", "cvat", "classification"])
def test_peak_memory_does_not_grow_with_the_images(fmt: str) -> None:
    small, large = peak(fmt, 200), peak(fmt, 2000)
    # Holding the 1,800 extra images would add ~57 MB. zipfile itself keeps one small record per
    # member for the central directory, so some growth is expected; it must stay far below that.
    assert large - small < 1800 * len(IMAGE) / 10, (small, large)


def test_items_are_pulled_one_at_a_time_and_progress_follows() -> None:
    progress: list[int] = []

    def lazy() -> Iterator[DatasetItem]:
        for index, entry in enumerate(items(5)):
            # The exporter must have finished every earlier item before asking for this one.
            assert progress == list(range(1, index + 1))
            yield entry

    export("coco", HEADER, lazy(), Discard(), on_item=progress.append)
    assert progress == [1, 2, 3, 4, 5]
