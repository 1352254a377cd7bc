"""CVAT for images 1.1 (XML).

    annotations.xml   <meta> with the labels, then one <image id name subset width height> each
    images/<file>     the images

Inside an <image>: <box label xtl ytl xbr ybr>, <polygon label points="x,y;x,y;...">,
<points label points=...> and <tag label>, each with <attribute name="...">value</attribute>
children. Coordinates are pixels. Tags are declared in <meta> as labels of type `tag` (CVAT 2.x).

Import streams the XML (one <image> in memory at a time) through defusedxml, so entity and DTD
tricks are refused. A rotated box becomes a polygon; polylines, ellipses, masks, cuboids,
skeletons and video tracks are skipped with a warning.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree as SafeET
from django.utils.translation import gettext as _

from defectlab.datasets.archive import Limits, Source, Spool
from defectlab.datasets.common import (
    Names,
    Writer,
    check_pixels,
    image_size,
    make_header,
    make_shape,
    number,
    number_text,
    skipped_warning,
    whole,
    xml_error,
    xml_safe,
)
from defectlab.datasets.common import (
    file_name as safe_name,
)
from defectlab.datasets.model import DatasetError, DatasetItem, ImportedDataset
from defectlab.geometry import Shape, ShapeType

FILE = "annotations.xml"
_SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_UNSUPPORTED = frozenset({"polyline", "ellipse", "mask", "cuboid", "skeleton", "track"})
_KINDS = frozenset((ShapeType.BOX, ShapeType.POLYGON, ShapeType.POINTS))


def _attr(value: object) -> str:
    return quoteattr(xml_safe(str(value)))


def _points(points: Iterable[tuple[float, float]]) -> str:
    return ";".join(f"{number_text(x)},{number_text(y)}" for x, y in points)


def export(writer: Writer, items: Iterable[DatasetItem]) -> None:
    body = Spool()
    try:
        for position, item in enumerate(writer.each(items)):
            writer.image(f"images/{item.file_name}", item)
            body.add(_image(writer, position, item))
        writer.sink.write_parts(FILE, [_head(writer, body.count), body, "</annotations>\n"])
    finally:
        body.close()


def _image(writer: Writer, position: int, item: DatasetItem) -> str:
    lines = [
        f"  <image id={_attr(position)} name={_attr(item.file_name)} "
        f"subset={_attr(item.split or 'default')} width={_attr(item.width)} "
        f"height={_attr(item.height)}>\n"
    ]
    for index, shape in writer.shapes(item, _KINDS):
        label = _attr(writer.header.labels[index].name)
        if shape.type is ShapeType.BOX:
            (x1, y1), (x2, y2) = shape.points
            geometry = (
                f"xtl={_attr(number_text(x1))} ytl={_attr(number_text(y1))} "
                f"xbr={_attr(number_text(x2))} ybr={_attr(number_text(y2))}"
            )
        else:
            geometry = f"points={_attr(_points(shape.points))}"
        attributes = "".join(
            f"      <attribute name={_attr(key)}>{escape(xml_safe(value))}</attribute>\n"
            for key, value in shape.attributes.items()
        )
        lines.append(
            f'    <{shape.type.value} label={label} source="manual" occluded="0" {geometry} '
            f'z_order="0">\n{attributes}    </{shape.type.value}>\n'
        )
    for tag in item.tags:
        lines.append(f'    <tag label={_attr(tag)} source="manual"/>\n')
    lines.append("  </image>\n")
    return "".join(lines)


def _head(writer: Writer, size: int) -> str:
    header = writer.header
    labels = [(label.name, label.color, "any") for label in header.labels]
    names = set(header.label_names)
    labels += [(tag, "#9e9e9e", "tag") for tag in header.tags if tag not in names]
    declared = "".join(
        f"        <label><name>{escape(name)}</name><color>{color}</color>"
        f"<type>{kind}</type><attributes></attributes></label>\n"
        for name, color, kind in labels
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
        f"  <meta>\n    <task>\n      <name>{escape(xml_safe(header.name))}</name>\n"
        f"      <size>{size}</size>\n      <mode>annotation</mode>\n"
        f"      <labels>\n{declared}      </labels>\n    </task>\n  </meta>\n"
    )


def load(source: Source, limits: Limits) -> ImportedDataset:
    source.root_at(lambda names: FILE in names)
    if FILE not in source:
        raise DatasetError(_("annotations.xml is missing."))
    labels, tags = Names(), Names()
    skipped: Counter[str] = Counter()
    items: list[DatasetItem] = []
    depth = 0
    root: Any = None
    with source.open(FILE) as file:
        try:
            for event, element in SafeET.iterparse(file, ("start", "end"), forbid_dtd=True):
                if event == "start":
                    depth += 1
                    root = element if root is None else root
                    continue
                depth -= 1
                if element.tag == "label" and depth > 1:
                    _declare(element, labels, tags)
                elif depth == 1 and element.tag in ("image", "track"):
                    if element.tag == "image":
                        items.append(_image_item(source, limits, element, labels, tags, skipped))
                    else:
                        skipped["track"] += 1
                    # Done with it: dropping it from the tree keeps memory flat in image count.
                    root.remove(element)
        except (SafeET.ParseError, defusedxml.DefusedXmlException) as error:
            raise xml_error(FILE, error) from None
    warnings = skipped_warning(skipped)
    return ImportedDataset(make_header(labels, tags), items, warnings, source=source)


def _declare(element: Any, labels: Names, tags: Names) -> None:
    name = element.findtext("name")
    if name is None:  # <label> of a sublabel list or an unrelated element
        return
    where = f"{FILE}: label '{name.strip()}'"
    if (element.findtext("type") or "").strip() == "tag":
        tags.add(name, where)
    else:
        labels.add(name, where, (element.findtext("color") or "").strip())


def _image_item(
    source: Source,
    limits: Limits,
    element: Any,
    labels: Names,
    tags: Names,
    skipped: Counter[str],
) -> DatasetItem:
    raw = element.get("name") or ""
    base = f"{FILE}: image '{raw.strip()}'"
    name = safe_name(raw, base)
    image = next((path for path in (f"images/{name}", name) if path in source), None)
    width = whole(element.get("width", "0"), base)
    height = whole(element.get("height", "0"), base)
    check_pixels(width, height, base, limits.max_image_pixels)
    if (width <= 0 or height <= 0) and image is not None:
        width, height = image_size(source.opener(image), image, limits.max_image_pixels)
    counts: Counter[str] = Counter()
    shapes: list[Shape] = []
    image_tags: list[str] = []
    for child in element:
        kind = child.tag
        counts[kind] += 1
        where = f"{base} {kind} {counts[kind]}"
        if kind == "tag":
            tag = tags.names[tags.add(child.get("label"), where)]
            if tag not in image_tags:
                image_tags.append(tag)
        elif kind in ("box", "polygon", "points"):
            shapes.append(_shape(child, labels, width, height, where))
        elif kind in _UNSUPPORTED:
            skipped[kind] += 1
    return DatasetItem(
        key=element.get("id") or name,
        file_name=name,
        width=max(width, 0),
        height=max(height, 0),
        shapes=shapes,
        tags=image_tags,
        split=_SPLITS.get((element.get("subset") or "").strip().lower()),
        image=source.opener(image) if image else None,
        image_ref=None if image else name,
    )


def _shape(element: Any, labels: Names, width: int, height: int, where: str) -> Shape:
    label = labels.add(element.get("label"), where)
    attributes = {
        str(child.get("name") or ""): child.text or ""
        for child in element.iterfind("attribute")
        if child.get("name")
    }
    if element.tag == "box":
        x1, y1, x2, y2 = (number(element.get(key), where) for key in ("xtl", "ytl", "xbr", "ybr"))
        if x2 < x1 or y2 < y1:
            raise DatasetError(
                _("The box's right or bottom edge comes before its left or top edge."),
                where=where,
            )
        kind = ShapeType.BOX
        points = [(x1, y1), (x2, y2)]
        rotation = number(element.get("rotation", "0"), where)
        if abs(rotation) > 1e-9:
            kind, points = ShapeType.POLYGON, _rotated(x1, y1, x2, y2, rotation)
    else:
        kind = ShapeType.POLYGON if element.tag == "polygon" else ShapeType.POINTS
        points = []
        for pair in (element.get("points") or "").split(";"):
            values = pair.split(",")
            if len(values) != 2:
                raise DatasetError(_("“points” must be x,y pairs separated by “;”."), where=where)
            points.append((number(values[0], where), number(values[1], where)))
    return make_shape(
        kind, points, label, width=width, height=height, where=where, attributes=attributes
    )


def _rotated(
    x1: float, y1: float, x2: float, y2: float, degrees: float
) -> list[tuple[float, float]]:
    # CVAT turns a box about its centre, clockwise on screen (y points down).
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [
        (cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c)
        for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
    ]
