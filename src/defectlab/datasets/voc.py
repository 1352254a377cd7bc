"""Pascal VOC detection.

    Annotations/<stem>.xml       one per image: <size>, and an <object> per box
    JPEGImages/<file>            the images
    ImageSets/Main/<split>.txt   the stems of each split (`default` for items without one)
    labelmap.txt                 label names and colours in order (CVAT/Datumaro's file)

VOC holds boxes only: polygons are written as their bounding boxes, points are skipped, tags are
not carried. Its boxes are 1-based inclusive pixel indexes: xmin=1, xmax=W covers the whole width.
In our continuous pixel coordinates that box is x1=0, x2=W, so reading subtracts 1 from xmin/ymin
only and writing adds 1 to the rounded x1/y1 only; this module is the one place that happens.
Attributes go into CVAT's <attributes> block; `difficult`, `truncated` and `occluded` with the
value 1 are also written as (and read from) VOC's own elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any
from xml.sax.saxutils import escape

from django.utils.translation import gettext as _

from defectlab.datasets import archive
from defectlab.datasets.archive import Limits, Source, Spool
from defectlab.datasets.common import (
    Names,
    Writer,
    at,
    at_line,
    check_pixels,
    image_size,
    make_header,
    make_shape,
    number,
    parse_xml,
    whole,
    xml_safe,
)
from defectlab.datasets.common import (
    file_name as safe_name,
)
from defectlab.datasets.model import DatasetError, DatasetItem, ImportedDataset
from defectlab.geometry import Shape, ShapeType
from defectlab.images import is_image_name

_FLAGS = ("truncated", "difficult", "occluded")
_SPLIT_FILES = {"train": "train", "val": "val", "test": "test", "default": None}


def _text(value: object) -> str:
    return escape(xml_safe(str(value)))


def export(writer: Writer, items: Iterable[DatasetItem]) -> None:
    splits: dict[str, Spool] = {}
    try:
        for item in writer.each(items):
            stem = archive.stem(item.file_name)
            writer.image(f"JPEGImages/{item.file_name}", item)
            objects = "".join(
                _object(writer.header.labels[index].name, shape, item)
                for index, shape in writer.shapes(item)
            )
            writer.sink.write_text(
                f"Annotations/{stem}.xml",
                "<annotation>\n  <folder>JPEGImages</folder>\n"
                f"  <filename>{_text(item.file_name)}</filename>\n"
                "  <source><database>DefectLab</database></source>\n"
                f"  <size><width>{item.width}</width><height>{item.height}</height>"
                "<depth>3</depth></size>\n  <segmented>0</segmented>\n"
                f"{objects}</annotation>\n",
            )
            split = item.split or "default"
            if split not in splits:
                splits[split] = Spool()
            splits[split].add(stem + "\n")
        for split, spool in splits.items():
            writer.sink.write_parts(f"ImageSets/Main/{split}.txt", [spool])
        writer.sink.write_text("labelmap.txt", _labelmap(writer))
    finally:
        for spool in splits.values():
            spool.close()


def _object(name: str, shape: Shape, item: DatasetItem) -> str:
    x1, y1, x2, y2 = shape.bbox()
    # 1-based inclusive pixel indexes; a box thinner than a pixel still covers one.
    xmin = min(round(x1), item.width - 1) + 1
    ymin = min(round(y1), item.height - 1) + 1
    xmax, ymax = max(round(x2), xmin), max(round(y2), ymin)
    flags = "".join(
        f"<{flag}>{1 if shape.attributes.get(flag) == '1' else 0}</{flag}>" for flag in _FLAGS
    )
    attributes = "".join(
        f"<attribute><name>{_text(key)}</name><value>{_text(value)}</value></attribute>"
        for key, value in shape.attributes.items()
    )
    return (
        f"  <object>\n    <name>{_text(name)}</name><pose>Unspecified</pose>{flags}\n"
        f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>\n"
        + (f"    <attributes>{attributes}</attributes>\n" if attributes else "")
        + "  </object>\n"
    )


def _labelmap(writer: Writer) -> str:
    lines = ["# label:color_rgb:parts:actions"]
    for label in writer.header.labels:
        color = label.color.lstrip("#")
        rgb = ",".join(str(int(color[k : k + 2], 16)) for k in (0, 2, 4)) if len(color) == 6 else ""
        lines.append(f"{label.name}:{rgb}::")
    return "\n".join(lines) + "\n"


def load(source: Source, limits: Limits) -> ImportedDataset:
    source.root_at(lambda names: any(n.startswith(("Annotations/", "labelmap.txt")) for n in names))
    names = source.names()
    files = [n for n in names if n.startswith("Annotations/") and n.endswith(".xml")]
    if not files and "labelmap.txt" not in source:
        raise DatasetError(_("No VOC annotation files (Annotations/*.xml) were found."))
    labels = Names()
    if "labelmap.txt" in source:
        _read_labelmap(source, labels)
    splits = _read_splits(source)
    images_by_stem = {
        PurePosixPath(n).with_suffix("").as_posix()[len("JPEGImages/") :]: n
        for n in names
        if n.startswith("JPEGImages/") and is_image_name(n)
    }
    items = [_read_file(source, name, labels, splits, images_by_stem, limits) for name in files]
    return ImportedDataset(make_header(labels), items, source=source)


def _read_labelmap(source: Source, labels: Names) -> None:
    text = source.read("labelmap.txt").decode("utf-8-sig", "replace")
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rsplit(":", 3)
        name = parts[0]
        color = None
        if len(parts) == 4:
            rgb = parts[1].split(",")
            if len(rgb) == 3 and all(value.strip().isdigit() and int(value) < 256 for value in rgb):
                color = "#" + "".join(f"{int(value):02x}" for value in rgb)
        labels.add(name, at_line("labelmap.txt", line_number), color)


def _read_splits(source: Source) -> dict[str, str | None]:
    splits: dict[str, str | None] = {}
    # Later files win, so an image listed in both default.txt and train.txt is in train.
    for split_file in ("default", "test", "val", "train"):
        name = f"ImageSets/Main/{split_file}.txt"
        if name in source:
            # Whole lines: image names may hold spaces (the per-class files with " 1"/"-1"
            # columns are not read).
            for line in source.read(name).decode("utf-8-sig", "replace").splitlines():
                if line.strip():
                    splits[line.strip()] = _SPLIT_FILES[split_file]
    return splits


def _read_file(
    source: Source,
    name: str,
    labels: Names,
    splits: dict[str, str | None],
    images_by_stem: dict[str, str],
    limits: Limits,
) -> DatasetItem:
    root = parse_xml(source.read(name), name)
    if root.tag != "annotation":
        raise DatasetError(_("The root element must be <annotation>."), where=name)
    stem = PurePosixPath(name).with_suffix("").as_posix()[len("Annotations/") :]
    written = (root.findtext("filename") or "").strip()
    image = f"JPEGImages/{written}" if written else None
    if image not in source:
        image = images_by_stem.get(stem)
    # The image's path below JPEGImages/ when it is there, else the name the file gives.
    file_name = image[len("JPEGImages/") :] if image else safe_name(written, name)
    width = height = 0
    size = root.find("size")
    if size is not None:
        width = whole(size.findtext("width", "0").strip() or "0", at(name, "size"))
        height = whole(size.findtext("height", "0").strip() or "0", at(name, "size"))
        check_pixels(width, height, at(name, "size"), limits.max_image_pixels)
    if (width <= 0 or height <= 0) and image is not None:
        width, height = image_size(source.opener(image), image, limits.max_image_pixels)
    shapes = [
        _read_object(element, labels, width, height, at(name, f"object {position}"))
        for position, element in enumerate(root.findall("object"), 1)
    ]
    return DatasetItem(
        key=stem,
        file_name=file_name,
        width=max(width, 0),
        height=max(height, 0),
        shapes=shapes,
        split=splits.get(stem),
        image=source.opener(image) if image else None,
        image_ref=None if image else file_name,
    )


def _read_object(element: Any, labels: Names, width: int, height: int, where: str) -> Shape:
    label = labels.add(element.findtext("name"), where)
    box = element.find("bndbox")
    if box is None:
        raise DatasetError(_("The object has no <bndbox>."), where=where)
    xmin, ymin, xmax, ymax = (
        number((box.findtext(key) or "").strip(), f"{where} {key}")
        for key in ("xmin", "ymin", "xmax", "ymax")
    )
    if xmax < xmin or ymax < ymin:
        raise DatasetError(
            _("The box's right or bottom edge comes before its left or top edge."), where=where
        )
    attributes: dict[str, str] = {}
    for attribute in element.iterfind("attributes/attribute"):
        key = (attribute.findtext("name") or "").strip()
        if key:
            attributes[key] = attribute.findtext("value") or ""
    for flag in _FLAGS:
        if (element.findtext(flag) or "").strip() == "1":
            attributes.setdefault(flag, "1")
    points = [(xmin - 1, ymin - 1), (xmax, ymax)]
    return make_shape(
        ShapeType.BOX, points, label, width=width, height=height, where=where, attributes=attributes
    )
