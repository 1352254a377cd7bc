"""COCO object detection (instances) JSON.

    annotations/instances_<split>.json   one per split; `default` for items without one
    images/<split>/<file>                the images

Boxes are `bbox: [x, y, width, height]` in pixels from the top-left corner; polygons are
`segmentation: [[x1, y1, x2, y2, ...]]` with their bounding box and area. Category ids are the
1-based position in the label list (contiguous, as trainers expect); labels match by name, so a
round trip holds however the ids were numbered. Shape attributes go in an `attributes` object
(as CVAT writes them), scores in `score`, image tags in a `tags` list on the image record and
the tag names in a top-level `tags` list (other tools ignore both).

Import also reads Roboflow's `<split>/_annotations.coco.json` and COCO 2017's `train2017/`
layout. A multi-part polygon becomes one polygon per part; RLE masks come in as their boxes, and
so does a `segmentation` that is neither (a warning names those annotations).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from defectlab.datasets.archive import Limits, Source, Spool
from defectlab.datasets.common import (
    Names,
    Writer,
    at,
    attribute_text,
    check_pixels,
    make_header,
    make_shape,
    number,
    parse_json,
    whole,
)
from defectlab.datasets.common import (
    file_name as safe_name,
)
from defectlab.datasets.model import DatasetError, DatasetItem, ImportedDataset
from defectlab.geometry import Shape, ShapeType

_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_SHOWN = 5  # annotations named in a warning


def _round(value: float) -> float:
    return round(value, 6)


def export(writer: Writer, items: Iterable[DatasetItem]) -> None:
    categories = [
        {"id": position + 1, "name": label.name, "supercategory": "", "color": label.color}
        for position, label in enumerate(writer.header.labels)
    ]
    # Per split: the image records and the annotation records, spooled while images stream.
    files: dict[str, tuple[Spool, Spool]] = {}
    image_id = annotation_id = 0
    try:
        for item in writer.each(items):
            split = item.split or "default"
            if split not in files:
                files[split] = (Spool(), Spool())
            images, annotations = files[split]
            image_id += 1
            writer.image(f"images/{split}/{item.file_name}", item)
            record: dict[str, Any] = {
                "id": image_id,
                "file_name": item.file_name,
                "width": item.width,
                "height": item.height,
            }
            if item.tags:
                record["tags"] = list(item.tags)
            images.add(_dumps(record), separator=",")
            for index, shape in writer.shapes(item):
                annotation_id += 1
                annotations.add(
                    _dumps(_annotation(shape, index, annotation_id, image_id)), separator=","
                )
        if not files:
            files["default"] = (Spool(), Spool())
        head = {
            "info": {"description": writer.header.name, "version": "1.0"},
            "licenses": [],
            "categories": categories,
            "tags": list(writer.header.tags),
        }
        for split, (images, annotations) in files.items():
            writer.sink.write_parts(
                f"annotations/instances_{split}.json",
                [_dumps(head)[:-1] + ',"images":[', images, '],"annotations":[', annotations, "]}"],
            )
    finally:
        for spools in files.values():
            for spool in spools:
                spool.close()


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _annotation(shape: Shape, index: int, annotation_id: int, image_id: int) -> dict[str, Any]:
    x1, y1, x2, y2 = shape.bbox()
    segmentation = []
    if shape.type is ShapeType.POLYGON:
        segmentation = [[_round(value) for point in shape.points for value in point]]
    record: dict[str, Any] = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": index + 1,
        "bbox": [_round(x1), _round(y1), _round(x2 - x1), _round(y2 - y1)],
        "area": _round(shape.area()),
        "segmentation": segmentation,
        "iscrowd": 0,
        "attributes": dict(shape.attributes),
    }
    if shape.score is not None:
        record["score"] = shape.score
    return record


def load(source: Source, limits: Limits) -> ImportedDataset:
    source.root_at(lambda names: any(n.startswith("annotations/") for n in names))
    names = source.names()
    files = [
        n for n in names if n.endswith(".json") and PurePosixPath(n).parent.name == "annotations"
    ]
    files = files or [n for n in names if n.endswith(".json")]
    if not files:
        raise DatasetError(_("No COCO annotation file (annotations/instances_*.json) was found."))
    labels, tags = Names(), Names()
    items: list[DatasetItem] = []
    odd = _Odd()
    for name in files:
        _load_file(source, limits, name, labels, tags, items, odd, single=len(files) == 1)
    warnings = []
    if odd.masks:
        message = ngettext(
            "%(count)s mask annotation was imported as its bounding box.",
            "%(count)s mask annotations were imported as their bounding boxes.",
            odd.masks,
        )
        warnings.append(message % {"count": odd.masks})
    if odd.unknown:
        count = len(odd.unknown)
        shown = "; ".join(odd.unknown[:_SHOWN]) + ("; …" if count > _SHOWN else "")
        message = ngettext(
            "%(count)s annotation has a “segmentation” that is neither polygons nor RLE; its bounding box was imported instead: %(where)s.",
            "%(count)s annotations have a “segmentation” that is neither polygons nor RLE; their bounding boxes were imported instead: %(where)s.",
            count,
        )
        warnings.append(message % {"count": count, "where": shown})
    return ImportedDataset(make_header(labels, tags), items, warnings, source=source)


@dataclass
class _Odd:
    """Annotations imported as their boxes: RLE masks (counted), and segmentations of no kind
    we know (named, for the warning)."""

    masks: int = 0
    unknown: list[str] = field(default_factory=list)


def _list(data: dict[str, Any], key: str, name: str, *, required: bool = True) -> list[Any]:
    value = data.get(key, None if required else [])
    if not isinstance(value, list):
        raise DatasetError(_("“%(key)s” must be a list.") % {"key": key}, where=name)
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DatasetError(_("A JSON object was expected here."), where=where)
    return value


def _load_file(
    source: Source,
    limits: Limits,
    name: str,
    labels: Names,
    tags: Names,
    items: list[DatasetItem],
    odd: _Odd,
    *,
    single: bool,
) -> None:
    """One COCO JSON file's categories, tags, images and annotations, checked in that order,
    appended to ``items`` (one per image, with its shapes)."""
    data = _object(parse_json(source.read(name), name), name)
    categories = _categories(data, name, labels)
    declared_tags = data.get("tags", [])
    if not isinstance(declared_tags, list):
        raise DatasetError(_("“%(key)s” must be a list.") % {"key": "tags"}, where=name)
    for position, tag in enumerate(declared_tags):
        tags.add(tag, at(name, f"tags[{position}]"))
    split_part, split = _split(name)
    records = _image_records(data, name, limits, tags)
    shapes = _shapes_by_image(data, name, categories, records, odd)
    for image_id, record in records.items():
        file_name = record["file_name"]
        path = _find_image(source, name, split_part, file_name)
        items.append(
            DatasetItem(
                key=str(image_id) if single else f"{name}#{image_id}",
                file_name=file_name,
                width=record["width"],
                height=record["height"],
                shapes=shapes[image_id],
                tags=record["tags"],
                split=split,
                image=source.opener(path) if path else None,
                image_ref=None if path else file_name,
            )
        )


def _categories(data: dict[str, Any], name: str, labels: Names) -> dict[int, int]:
    """The file's category ids, each mapped to its label (unique ids)."""
    categories: dict[int, int] = {}
    for position, raw in enumerate(_list(data, "categories", name)):
        where = at(name, f"categories[{position}]")
        category = _object(raw, where)
        category_id = whole(category.get("id"), where)
        if category_id in categories:
            raise DatasetError(
                _("Two categories have the id %(id)s.") % {"id": category_id}, where=where
            )
        categories[category_id] = labels.add(category.get("name"), where, category.get("color"))
    return categories


def _image_records(
    data: dict[str, Any], name: str, limits: Limits, tags: Names
) -> dict[object, dict[str, Any]]:
    """The file's images by id: a safe file name, a positive size within the pixel limit, and
    their tags (added to ``tags``)."""
    records: dict[object, dict[str, Any]] = {}
    for position, raw in enumerate(_list(data, "images", name)):
        where = at(name, f"images[{position}]")
        record = _object(raw, where)
        image_id = record.get("id")
        if not isinstance(image_id, int | str) or isinstance(image_id, bool) or image_id in records:
            raise DatasetError(_("Each image needs its own id."), where=where)
        raw_name = record.get("file_name")
        if not isinstance(raw_name, str):
            raise DatasetError(_("The image's file name is missing."), where=where)
        width, height = whole(record.get("width"), where), whole(record.get("height"), where)
        if width <= 0 or height <= 0:
            raise DatasetError(_("The image's width and height must be positive."), where=where)
        check_pixels(width, height, where, limits.max_image_pixels)
        image_tags = record.get("tags", [])
        if not isinstance(image_tags, list):
            raise DatasetError(_("“%(key)s” must be a list.") % {"key": "tags"}, where=where)
        for tag in image_tags:
            tags.add(tag, where)
        records[image_id] = {
            "file_name": safe_name(raw_name, where),
            "width": width,
            "height": height,
            "tags": [tag.strip() for tag in image_tags],
        }
    return records


def _shapes_by_image(
    data: dict[str, Any],
    name: str,
    categories: dict[int, int],
    records: dict[object, dict[str, Any]],
    odd: _Odd,
) -> dict[object, list[Shape]]:
    """The file's annotations as shapes, by image id (every image has a list, maybe empty);
    an annotation must name a known image and category."""
    shapes: dict[object, list[Shape]] = {image_id: [] for image_id in records}
    for position, raw in enumerate(_list(data, "annotations", name, required=False)):
        where = at(name, f"annotations[{position}]")
        annotation = _object(raw, where)
        image_id = annotation.get("image_id")
        if (
            not isinstance(image_id, int | str)
            or isinstance(image_id, bool)
            or image_id not in records
        ):
            raise DatasetError(
                _("The annotation refers to image %(id)s, which is not in “images”.")
                % {"id": json.dumps(image_id)[:40]},
                where=where,
            )
        category_ref = annotation.get("category_id")
        if not isinstance(category_ref, int) or category_ref not in categories:
            raise DatasetError(
                _("The annotation refers to category %(id)s, which is not in “categories”.")
                % {"id": json.dumps(category_ref)[:40]},
                where=where,
            )
        shapes[image_id].extend(
            _shapes(annotation, categories[category_ref], records[image_id], where, odd)
        )
    return shapes


def _shapes(
    annotation: dict[str, Any], label: int, image: dict[str, Any], where: str, odd: _Odd
) -> list[Shape]:
    width, height = image["width"], image["height"]
    raw_attributes = annotation.get("attributes") or {}
    if not isinstance(raw_attributes, dict):
        raise DatasetError(_("“attributes” must be an object."), where=where)
    attributes = {str(key): attribute_text(value, where) for key, value in raw_attributes.items()}
    raw_score = annotation.get("score")
    score = None if raw_score is None else number(raw_score, where)
    common: dict[str, Any] = {
        "width": width,
        "height": height,
        "where": where,
        "attributes": attributes,
        "score": score,
    }
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        shapes = []
        for part in segmentation:
            if not isinstance(part, list) or len(part) < 6 or len(part) % 2:
                raise DatasetError(
                    _("Each polygon in “segmentation” needs at least 3 x, y pairs."), where=where
                )
            values = [number(value, where) for value in part]
            points = list(zip(values[0::2], values[1::2], strict=True))
            shapes.append(make_shape(ShapeType.POLYGON, points, label, **common))
        return shapes
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise DatasetError(_("“bbox” must be [x, y, width, height]."), where=where)
    x, y, w, h = (number(value, where) for value in bbox)
    if w <= 0 or h <= 0:
        raise DatasetError(_("The box has no area: its width or height is zero."), where=where)
    box = make_shape(ShapeType.BOX, [(x, y), (x + w, y + h)], label, **common)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        odd.masks += 1  # RLE
    elif segmentation not in (None, []):
        odd.unknown.append(where)
    return [box]


def _split(name: str) -> tuple[str, str | None]:
    """The split folder name used by the file (e.g. "train2017") and our split for it."""
    path = PurePosixPath(name)
    stem = re.sub(r"^(instances|annotations|person_keypoints)_", "", path.stem)
    split = _SPLIT_NAMES.get(re.sub(r"\d+$", "", stem))
    if split is None and path.parent.name not in ("", "annotations"):
        split = _SPLIT_NAMES.get(path.parent.name)
    return stem, split


def _find_image(source: Source, name: str, split_part: str, file_name: str) -> str | None:
    folder = PurePosixPath(name).parent
    root = folder.parent if folder.name == "annotations" else folder
    for candidate in (
        root / "images" / split_part / file_name,
        root / "images" / file_name,
        root / split_part / file_name,
        folder / file_name,
        root / file_name,
    ):
        text = candidate.as_posix()
        if text in source:
            return text
    return None
