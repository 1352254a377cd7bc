"""Dataset formats: export annotated images to YOLO, YOLO-seg, COCO, Pascal VOC, Label Studio
JSON, CVAT XML or classification folders, and import them back.

Pure Python with no database access: callers turn their tasks into `DatasetItem`s (shapes in
image pixels, label = `DatasetLabel.id`) and hand them over as an iterator, and get checked
`DatasetItem`s back from imports (label = index into `ImportedDataset.labels`). Exports stream:
images are copied in chunks and annotation text is spooled to disk, so memory does not grow with
the data; only zipfile's central-directory record (about 1 KB per file written) does.

    stats = export("yolo", header, items, out)
    with load("coco", "upload.zip") as dataset:
        ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from defectlab.datasets import classification as classification
from defectlab.datasets import coco as coco
from defectlab.datasets import cvat as cvat
from defectlab.datasets import labelstudio as labelstudio
from defectlab.datasets import voc as voc
from defectlab.datasets import yolo as yolo
from defectlab.datasets.archive import Limits, Source, open_source
from defectlab.datasets.common import Progress, Writer
from defectlab.datasets.model import (
    SPLITS,
    DatasetError,
    DatasetHeader,
    DatasetItem,
    DatasetLabel,
    ExportStats,
    ImportedDataset,
)

Exporter = Callable[[Writer, Iterable[DatasetItem]], None]
Loader = Callable[[Source, Limits], ImportedDataset]


@dataclass(frozen=True, slots=True)
class Format:
    """A format and what survives a trip through it: a subset of "box", "polygon", "points"
    (other shapes are converted or skipped), "attributes", "tags", "splits", "predictions"."""

    name: str
    title: str | Promise
    exporter: Exporter
    loader: Loader | None
    keeps: frozenset[str]


def _keeps(*what: str) -> frozenset[str]:
    return frozenset(what)


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        Format(
            "yolo", gettext_lazy("YOLO detection"), yolo.export_detection, yolo.load,
            _keeps("box", "splits"),
        ),
        Format(
            "yolo_seg", gettext_lazy("YOLO segmentation"), yolo.export_segmentation, yolo.load,
            _keeps("polygon", "splits"),
        ),
        Format(
            "coco", "COCO", coco.export, coco.load,
            _keeps("box", "polygon", "attributes", "tags", "splits"),
        ),
        Format(
            "voc", "Pascal VOC", voc.export, voc.load,
            _keeps("box", "attributes", "splits"),
        ),
        Format(
            "labelstudio", "Label Studio JSON", labelstudio.export, labelstudio.load,
            _keeps("box", "polygon", "attributes", "tags", "predictions"),
        ),
        Format(
            "cvat", "CVAT XML 1.1", cvat.export, cvat.load,
            _keeps("box", "polygon", "points", "attributes", "tags", "splits"),
        ),
        Format(
            "classification", gettext_lazy("Classification folders"), classification.export,
            classification.load, _keeps("tags", "splits"),
        ),
    )
}  # fmt: skip


def _format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise DatasetError(_("Unknown dataset format “%(name)s”.") % {"name": name}) from None


def export(
    format_name: str,
    header: DatasetHeader,
    items: Iterable[DatasetItem],
    out: IO[bytes],
    *,
    include_images: bool = True,
    on_item: Progress | None = None,
) -> ExportStats:
    """Write `items` as a zip archive in the named format to `out` (which need not seek).
    `on_item(n)` is called after each item is written. Raises DatasetError on an item that
    cannot be written; `out` then holds a partial archive the caller should discard."""
    fmt = _format(format_name)
    writer = Writer(header, out, include_images=include_images, on_item=on_item)
    try:
        fmt.exporter(writer, items)
    except BaseException:
        writer.sink.abort()
        raise
    return writer.finish()


def load(
    format_name: str, path: str | os.PathLike[str], *, limits: Limits | None = None
) -> ImportedDataset:
    """Read a zip archive, a folder or a single annotation file. Everything is parsed and
    checked before it returns; the first problem raises DatasetError and nothing is returned."""
    fmt = _format(format_name)
    if fmt.loader is None:
        raise DatasetError(_("Importing this format is not supported."))
    limits = limits or Limits()
    source = open_source(path, limits)
    try:
        return fmt.loader(source, limits)
    except BaseException:
        source.close()
        raise


__all__ = [
    "FORMATS",
    "SPLITS",
    "DatasetError",
    "DatasetHeader",
    "DatasetItem",
    "DatasetLabel",
    "ExportStats",
    "Format",
    "ImportedDataset",
    "Limits",
    "export",
    "load",
]
