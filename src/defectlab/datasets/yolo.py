"""YOLO (Ultralytics layout), detection and segmentation.

    data.yaml                    names in class order; train/val/test image folders
    images/<split>/<file>        the images
    labels/<split>/<stem>.txt    one line per shape, coordinates normalised to 0..1:
                                 detection     `class cx cy w h`
                                 segmentation  `class x1 y1 x2 y2 ... xn yn`

Every exported image gets a label file, an empty one when nothing is drawn, so images and label
files always pair up. Detection writes polygons as their bounding boxes; segmentation writes boxes
as 4-corner polygons; point shapes are skipped. Items without a split go to `train`; without a
val split, data.yaml's `val` points at the training images and a comment at its top says so.

Import reads both variants alike (5 tokens are a box, `class` plus 3 or more x y pairs a polygon),
takes image sizes from the image headers, and also accepts `classes.txt` / `obj.names` instead of
data.yaml and label files next to their images (CVAT's YOLO 1.1 layout).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import yaml
from django.utils.translation import gettext as _

from defectlab.datasets.archive import Limits, Source, stem
from defectlab.datasets.common import (
    Names,
    Writer,
    at_line,
    image_size,
    make_header,
    make_shape,
    number,
    number_text,
    whole,
)
from defectlab.datasets.model import DatasetError, DatasetHeader, DatasetItem, ImportedDataset
from defectlab.geometry import Shape, ShapeType
from defectlab.images import is_image_name

DECIMALS = 6
_MAX_YAML = 1 << 20  # a data.yaml is a few lines; a big one is an alias bomb or a mistake
_YAML_FILES = ("data.yaml", "data.yml", "dataset.yaml")
_NAME_FILES = (*_YAML_FILES, "classes.txt", "obj.names", "labels/classes.txt")
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# Written at the top of data.yaml when the export has no val split (a file for trainers, so English).
NO_VAL_COMMENT = (
    "# No val split was exported: val = train (the model validates on its training images)."
)


def export_detection(writer: Writer, items: Iterable[DatasetItem]) -> None:
    _export(writer, items, segmentation=False)


def export_segmentation(writer: Writer, items: Iterable[DatasetItem]) -> None:
    _export(writer, items, segmentation=True)


def _export(writer: Writer, items: Iterable[DatasetItem], *, segmentation: bool) -> None:
    splits: set[str] = set()
    # With the images in the archive, its label files are a thousandth of it: small ones are
    # stored, which saves zlib's set-up per file. Without them, they are the archive: deflated.
    label_file = writer.sink.write_small if writer.include_images else writer.sink.write_text
    for item in writer.each(items):
        split = item.split or "train"
        splits.add(split)
        writer.image(f"images/{split}/{item.file_name}", item)
        lines = []
        size = (item.width, item.height)
        for index, shape in writer.shapes(item):
            values = _polygon(shape) if segmentation else _box(shape.bbox())
            # Even positions are x (divided by the width), odd positions y (by the height).
            sizes = size * (len(values) // 2)
            scaled = " ".join(
                [number_text(value / by, DECIMALS) for value, by in zip(values, sizes, strict=True)]
            )
            lines.append(f"{index} {scaled}\n")
        label_file(f"labels/{split}/{stem(item.file_name)}.txt", "".join(lines))
    writer.sink.write_text("data.yaml", _data_yaml(writer.header, splits))


def _box(bbox: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = bbox
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def _polygon(shape: Shape) -> list[float]:
    points = shape.points
    if shape.type is ShapeType.BOX:
        (x1, y1), (x2, y2) = points
        points = ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
    return [coordinate for point in points for coordinate in point]


def _data_yaml(header: DatasetHeader, splits: set[str]) -> str:
    # Trainers want train and val; with no val split the model validates on the training images.
    data: dict[str, Any] = {
        "train": "images/train",
        "val": "images/val" if "val" in splits else "images/train",
    }
    if "test" in splits:
        data["test"] = "images/test"
    data["nc"] = len(header.labels)
    data["names"] = header.label_names
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if "val" not in splits:
        text = f"{NO_VAL_COMMENT}\n{text}"
    return text


def load(source: Source, limits: Limits) -> ImportedDataset:
    source.root_at(lambda names: not set(_NAME_FILES).isdisjoint(names))
    labels, split_dirs = _read_names(source)
    names = set(source.names())
    images = [name for name in source.names() if is_image_name(name)]
    used_labels: set[str] = set()
    items = []
    for image in images:
        label_file = _label_file(image, names)
        if label_file:
            used_labels.add(label_file)
        width, height = image_size(source.opener(image), image, limits.max_image_pixels)
        shapes = _read_labels(source, label_file, labels, width, height) if label_file else []
        items.append(
            DatasetItem(
                key=image,
                file_name=_file_name(image),
                width=width,
                height=height,
                shapes=shapes,
                split=_split(image, split_dirs),
                image=source.opener(image),
            )
        )
    for name in sorted(names - used_labels):
        parts = PurePosixPath(name).parts
        if name.endswith(".txt") and "labels" in parts[:-1] and parts[-1] != "classes.txt":
            raise DatasetError(_("There is no image for this label file."), where=name)
    return ImportedDataset(make_header(labels), items, source=source)


def _read_names(source: Source) -> tuple[Names, dict[str, str]]:
    labels = Names()
    yaml_name = next((n for n in _YAML_FILES if n in source), None)
    if yaml_name is None:
        for candidate in _NAME_FILES[len(_YAML_FILES) :]:
            if candidate in source:
                lines = source.read(candidate).decode("utf-8-sig", "replace").splitlines()
                for number_, line in enumerate(lines, 1):
                    if line.strip():
                        _add_class(labels, line, at_line(candidate, number_))
                return labels, {}
        raise DatasetError(_("data.yaml (or classes.txt) with the class names is missing."))
    if source.size(yaml_name) > _MAX_YAML:
        raise DatasetError(_("This annotation file is too large to import."), where=yaml_name)
    try:
        data = yaml.safe_load(source.read(yaml_name))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = at_line(yaml_name, mark.line + 1) if mark else yaml_name
        raise DatasetError(_("This is not valid YAML."), where=where) from None
    if not isinstance(data, dict) or "names" not in data:
        raise DatasetError(_("The class names (“names”) are missing."), where=yaml_name)
    raw = data["names"]
    if isinstance(raw, dict):
        # names: {0: scratch, 1: dent}; the keys must be exactly the class indexes.
        if sorted(key for key in raw if type(key) is int) != list(range(len(raw))):
            raise DatasetError(
                _("The class numbers in “names” must be 0, 1, 2, …"), where=yaml_name
            )
        raw = [raw[index] for index in range(len(raw))]
    if not isinstance(raw, list):
        raise DatasetError(_("The class names (“names”) are missing."), where=yaml_name)
    for index, name in enumerate(raw):
        # An unquoted `names: [0, 1]` gives numbers; they are names all the same.
        text = str(name) if isinstance(name, int | float) and not isinstance(name, bool) else name
        _add_class(labels, text, f"{yaml_name}: names[{index}]")
    split_dirs: dict[str, str] = {}
    for key, split in _SPLIT_NAMES.items():
        path = data.get(key)
        if isinstance(path, str):
            clean = [part for part in PurePosixPath(path).parts if part not in ("..", ".", "/")]
            if clean:
                # `val: images/train` (no val split) must not relabel the training images.
                split_dirs.setdefault(PurePosixPath(*clean).as_posix() + "/", split)
    return labels, split_dirs


def _add_class(labels: Names, name: object, where: str) -> None:
    # A repeated name would shift every later class index, so it is refused, not merged.
    if name in labels:
        raise DatasetError(_("This class name appears twice."), where=where)
    labels.add(name, where)


def _label_file(image: str, names: set[str]) -> str | None:
    path = PurePosixPath(image)
    parts = list(path.with_suffix(".txt").parts)
    if "images" in parts[:-1]:
        # Ultralytics' rule: the last `images` folder becomes `labels`.
        position = len(parts) - 2 - parts[-2::-1].index("images")
        candidate = PurePosixPath(*parts[:position], "labels", *parts[position + 1 :]).as_posix()
        if candidate in names:
            return candidate
    sibling = path.with_suffix(".txt").as_posix()
    return sibling if sibling in names else None


def _file_name(image: str) -> str:
    """The image's path below its split folder: images/train/lot1/a.png -> lot1/a.png."""
    parts = PurePosixPath(image).parts
    folders = parts[:-1]
    if "images" in folders:
        rest = parts[len(folders) - folders[::-1].index("images") :]
        if len(rest) > 1 and rest[0] in _SPLIT_NAMES:
            rest = rest[1:]
    elif folders and _folder_split(folders[0]):
        rest = parts[1:]
    else:
        rest = parts
    return PurePosixPath(*rest).as_posix()


def _folder_split(folder: str) -> str | None:
    # CVAT's YOLO 1.1 keeps images in obj_train_data/, obj_valid_data/, ...
    match = re.fullmatch(r"obj_(\w+)_data", folder)
    return _SPLIT_NAMES.get(match.group(1) if match else folder)


def _split(image: str, split_dirs: dict[str, str]) -> str | None:
    for folder, split in split_dirs.items():
        if image.startswith(folder):
            return split
    for part in reversed(PurePosixPath(image).parts[:-1]):
        if found := _folder_split(part):
            return found
    return None


def _read_labels(source: Source, name: str, labels: Names, width: int, height: int) -> list[Shape]:
    text = source.read(name).decode("utf-8-sig", errors="replace")
    shapes = []
    for line_number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = at_line(name, line_number)
        if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
            raise DatasetError(
                _(
                    "A line needs a class and 4 numbers for a box, or a class and at least 3 x y pairs for a polygon; this one has %(count)s values."
                )
                % {"count": len(tokens)},
                where=where,
            )
        index = whole(tokens[0], where)
        if not 0 <= index < len(labels.names):
            raise DatasetError(
                _("Class %(index)s does not exist; the classes are 0 to %(last)s.")
                % {"index": index, "last": len(labels.names) - 1},
                where=where,
            )
        values = [number(token, where) for token in tokens[1:]]
        if len(tokens) == 5:
            cx, cy, w, h = (
                values[0] * width,
                values[1] * height,
                values[2] * width,
                values[3] * height,
            )
            if w <= 0 or h <= 0:
                raise DatasetError(
                    _("The box has no area: its width or height is zero."), where=where
                )
            kind = ShapeType.BOX
            points = [(cx - w / 2, cy - h / 2), (cx + w / 2, cy + h / 2)]
        else:
            kind = ShapeType.POLYGON
            points = [(values[k] * width, values[k + 1] * height) for k in range(0, len(values), 2)]
        shapes.append(make_shape(kind, points, index, width=width, height=height, where=where))
    return shapes
