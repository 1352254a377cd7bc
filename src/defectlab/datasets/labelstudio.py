"""Label Studio JSON: a list of tasks, as Label Studio exports and imports them.

    tasks.json          [{"data": {"image": ...}, "annotations": [{"result": [...]}], ...}]
    images/<file>       the images (data.image names them unless the item has an image_ref)
    label_config.xml    a labeling config to paste into the Label Studio project; read back on
                        import (when present) for the label order, colours and tag names

Regions are in PERCENT of `original_width` / `original_height`: `rectanglelabels` (x, y, width,
height; a rotation about the top-left corner makes the box a polygon on import),
`polygonlabels` (points) and `keypointlabels` (one point). Image tags are a `choices` result
named `tags`; shape attributes are per-region `choices` results sharing the region's id, named
after the attribute. Predictions go in `predictions` with their scores. Splits are not carried.

Import uses the first annotation of each task that was not cancelled; region types Label
Studio has and DefectLab does not (brushes, ellipses, ...) are skipped with a warning.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import quoteattr

from django.utils.translation import gettext as _

from defectlab.datasets.archive import Limits, Source, Spool
from defectlab.datasets.common import (
    Names,
    Writer,
    at,
    check_pixels,
    image_size,
    make_header,
    make_shape,
    number,
    parse_json,
    parse_xml,
    skipped_warning,
    whole,
    xml_safe,
)
from defectlab.datasets.model import DatasetError, DatasetItem, ImportedDataset
from defectlab.geometry import Shape, ShapeType

_FROM_NAMES = {ShapeType.BOX: "label", ShapeType.POLYGON: "polygon"}
_KINDS = frozenset((ShapeType.BOX, ShapeType.POLYGON))
CONFIG = "label_config.xml"
_REGIONS = frozenset({"rectanglelabels", "polygonlabels", "keypointlabels"})
# Results Label Studio has that carry nothing a shape or tag keeps: read past without a word.
_OTHER_KINDS = frozenset(
    {"textarea", "rating", "number", "datetime", "taxonomy", "relation", "pairwise", "ranker"}
)
_LABEL_TAGS = frozenset({"RectangleLabels", "PolygonLabels", "KeyPointLabels", "Labels"})


# One encoder for every task (json.dumps makes one a call when given options). No task refers to
# itself, so the check for circular references is left out; the text is the same.
_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_BATCH = 500  # tasks encoded before their text goes to the spool in one write


def export(writer: Writer, items: Iterable[DatasetItem]) -> None:
    tasks = Spool()
    try:
        batch: list[str] = []
        for position, item in enumerate(writer.each(items), 1):
            path = f"images/{item.file_name}"
            writer.image(path, item)
            task: dict[str, Any] = {
                "id": int(item.key) if item.key.isascii() and item.key.isdigit() else position,
                "data": {"image": item.image_ref or path},
                "annotations": [{"result": _results(writer, item, predictions=False)}],
            }
            if item.predictions:
                result = _results(writer, item, predictions=True)
                task["predictions"] = [{"model_version": "defectlab", "result": result}]
            batch.append(_ENCODE(task))
            if len(batch) >= _BATCH:
                tasks.extend(batch, separator=",\n")
                batch.clear()
        tasks.extend(batch, separator=",\n")
        writer.sink.write_parts("tasks.json", ["[", tasks, "]\n"])
        writer.sink.write_text(CONFIG, _config(writer))
    finally:
        tasks.close()


def _results(writer: Writer, item: DatasetItem, *, predictions: bool) -> list[dict[str, Any]]:
    width, height = item.width, item.height
    labels = writer.header.labels
    results: list[dict[str, Any]] = []
    for number_, (index, shape) in enumerate(writer.shapes(item, _KINDS, predictions=predictions)):
        region = f"r{number_ + 1}"
        name = labels[index].name
        if shape.type is ShapeType.BOX:
            kind = "rectanglelabels"
            (x1, y1), (x2, y2) = shape.points
            value: dict[str, Any] = {
                "x": x1 / width * 100,
                "y": y1 / height * 100,
                "width": (x2 - x1) / width * 100,
                "height": (y2 - y1) / height * 100,
                "rotation": 0,
            }
        else:
            kind = "polygonlabels"
            value = {"points": [[x / width * 100, y / height * 100] for x, y in shape.points]}
            value["closed"] = True
        value[kind] = [name]
        result = _result(region, kind, _FROM_NAMES[shape.type], value, item)
        if shape.score is not None:
            result["score"] = shape.score
        results.append(result)
        if shape.attributes:
            for key, text in shape.attributes.items():
                results.append(_result(region, "choices", key, {"choices": [text]}, item))
    if item.tags and not predictions:
        results.append(_result("tags", "choices", "tags", {"choices": list(item.tags)}, item))
    return results


def _result(
    region: str, kind: str, from_name: str, value: dict[str, Any], item: DatasetItem
) -> dict[str, Any]:
    return {
        "id": region,
        "type": kind,
        "from_name": from_name,
        "to_name": "image",
        "original_width": item.width,
        "original_height": item.height,
        "image_rotation": 0,
        "value": value,
    }


def _config(writer: Writer) -> str:
    labels = [(label.name, label.color) for label in writer.header.labels]
    return label_config(labels, writer.header.tags, choices=True)


# The control tags of the shapes Label Studio draws that DefectLab keeps, with the names the
# export (and every config made here) gives them.
_CONTROLS = {
    ShapeType.BOX: ("RectangleLabels", "label"),
    ShapeType.POLYGON: ("PolygonLabels", "polygon"),
    ShapeType.POINTS: ("KeyPointLabels", "keypoint"),
}


def label_config(
    labels: Iterable[tuple[str, str | None]],
    tags: Iterable[str] = (),
    *,
    kinds: Iterable[ShapeType] = (ShapeType.BOX, ShapeType.POLYGON),
    choices: bool = False,
) -> str:
    """A Label Studio labeling config for an image named ``image``: one control per shape kind
    of ``kinds`` (in the order box, polygon, points), each listing ``labels`` (name, colour),
    and, with ``choices``, the image tags as a ``Choices`` control named ``tags``."""

    def options(tag: str, names: Iterable[tuple[str, str | None]]) -> str:
        return "".join(
            f"    <{tag} value={quoteattr(xml_safe(name))}"
            + (f" background={quoteattr(color)}" if color else "")
            + "/>\n"
            for name, color in names
        )

    listed = options("Label", labels)
    wanted = set(kinds)
    controls = "".join(
        f'  <{tag} name="{name}" toName="image">\n{listed}  </{tag}>\n'
        for kind, (tag, name) in _CONTROLS.items()
        if kind in wanted
    )
    if choices:
        listed_tags = options("Choice", ((tag, None) for tag in tags))
        controls += (
            f'  <Choices name="tags" toName="image" choice="multiple">\n{listed_tags}  </Choices>\n'
        )
    return f'<View>\n  <Image name="image" value="$image"/>\n{controls}</View>\n'


def load(source: Source, limits: Limits) -> ImportedDataset:
    source.root_at(lambda names: any(n.endswith(".json") and "/" not in n for n in names))
    files = [name for name in source.names() if name.endswith(".json") and "/" not in name]
    if not files:
        raise DatasetError(_("No Label Studio JSON file was found."))
    labels, tags = Names(), Names()
    if CONFIG in source:
        _read_config(source, labels, tags)
    skipped: Counter[str] = Counter()
    basenames = Counter(PurePosixPath(name).name for name in source.names())
    items = []
    for name in files:
        tasks = parse_json(source.read(name), name)
        if isinstance(tasks, dict):
            tasks = [tasks]
        if not isinstance(tasks, list):
            raise DatasetError(_("The file must hold a list of tasks."), where=name)
        reader = _TaskReader(
            source, limits, RegionReader(labels, tags, skipped, limits.max_image_pixels), basenames
        )
        for position, task in enumerate(tasks):
            items.append(reader.read(task, at(name, f"[{position}]"), position))
    warnings = skipped_warning(skipped)
    return ImportedDataset(make_header(labels, tags), items, warnings, source=source)


def _read_config(source: Source, labels: Names, tags: Names) -> None:
    """Declared labels (with colours) and image-level choices, in the config's order."""
    root = parse_xml(source.read(CONFIG), CONFIG)
    for control in root.iter():
        if control.tag in _LABEL_TAGS:
            for option in control.iter("Label"):
                where = f"{CONFIG}: Label '{option.get('value', '')}'"
                labels.add(option.get("value"), where, option.get("background"))
        elif control.tag == "Choices" and control.get("perRegion", "").lower() != "true":
            for option in control.iter("Choice"):
                tags.add(option.get("value"), f"{CONFIG}: Choice '{option.get('value', '')}'")


@dataclass(frozen=True, slots=True)
class TaskRegions:
    """What one Label Studio task draws on its image (shapes' labels index the reader's
    ``labels``); ``width`` / ``height`` are 0 when nothing tells the image's size."""

    shapes: list[Shape]
    tags: list[str]
    predictions: list[Shape]
    width: int
    height: int


def image_of(task: object, where: str) -> str:
    """The image a task names: ``data.image``, else the first text value in ``data``."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise DatasetError(_("A task must be an object with a “data” object."), where=where)
    data = task["data"]
    ref = data.get("image")
    if ref is None:
        ref = next((value for value in data.values() if isinstance(value, str)), None)
    if not isinstance(ref, str) or not ref.strip():
        raise DatasetError(_("The task names no image in “data”."), where=at(where, "data"))
    return ref


class _TaskReader:
    """A task of a dataset archive: its image found in the archive (or kept by its address)."""

    def __init__(
        self, source: Source, limits: Limits, regions: RegionReader, basenames: Counter[str]
    ) -> None:
        self.source, self.limits, self.regions, self.basenames = source, limits, regions, basenames

    def read(self, task: object, where: str, position: int) -> DatasetItem:
        ref = image_of(task, where)
        assert isinstance(task, dict)  # image_of checked it
        image = self._find(ref)
        size = None
        if image is not None:
            found = image

            def size() -> tuple[int, int]:
                return image_size(self.source.opener(found), found, self.limits.max_image_pixels)

        read = self.regions.read(task, where, size)
        task_id = task.get("id")
        key = str(task_id) if isinstance(task_id, int | str) else str(position + 1)
        return DatasetItem(
            key=key,
            file_name=file_name_of(image, ref),
            width=read.width,
            height=read.height,
            shapes=read.shapes,
            tags=read.tags,
            image=self.source.opener(image) if image else None,
            predictions=read.predictions,
            image_ref=None if image else ref,
        )

    def _find(self, ref: str) -> str | None:
        path = unquote(urlsplit(ref).path).lstrip("/")
        if path in self.source:
            return path
        name = PurePosixPath(path).name
        if self.basenames[name] == 1:
            return next(n for n in self.source.names() if PurePosixPath(n).name == name)
        return None


class RegionReader:
    """Label Studio results → shapes in image pixels: the one reading of its regions (percent
    of ``original_width`` / ``original_height``), shared by the dataset loader here and by the
    task import (``transfer.taskimport``), which hands tasks over without their images.

    ``labels`` and ``tags`` collect the names met; a shape's ``label`` is its index there."""

    def __init__(
        self, labels: Names, tags: Names, skipped: Counter[str], max_pixels: int | None
    ) -> None:
        self.labels, self.tags, self.skipped, self.max_pixels = labels, tags, skipped, max_pixels
        self.width = self.height = 0

    def read(
        self,
        task: dict[str, Any],
        where: str,
        size: Callable[[], tuple[int, int]] | None = None,
    ) -> TaskRegions:
        """The shapes, image tags and predictions of one task (its first annotation that was
        not cancelled, its first prediction). The image's size comes from the results; when
        they do not give it, from ``size`` (which reads the image), else it stays unknown (0)
        and a region on the image is refused."""
        self.width = self.height = 0
        results = self._results(task, "annotations", where, choose_uncancelled=True)
        predicted = self._results(task, "predictions", where, choose_uncancelled=False)
        self._size(results + predicted)
        if (self.width <= 0 or self.height <= 0) and size is not None:
            self.width, self.height = size()
        shapes, tags = self._shapes(results)
        predictions, _tags = self._shapes(predicted)
        return TaskRegions(shapes, tags, predictions, self.width, self.height)

    def _results(
        self, task: dict[str, Any], key: str, where: str, *, choose_uncancelled: bool
    ) -> list[tuple[dict[str, Any], str, float | None]]:
        entries = task.get(key) or []
        if not isinstance(entries, list):
            raise DatasetError(_("“%(key)s” must be a list.") % {"key": key}, where=where)
        for position, entry in enumerate(entries):
            here = f"{where}.{key}[{position}]"
            if not isinstance(entry, dict):
                raise DatasetError(_("A JSON object was expected here."), where=here)
            if choose_uncancelled and entry.get("was_cancelled"):
                continue
            results = entry.get("result") or []
            if not isinstance(results, list):
                raise DatasetError(_("“%(key)s” must be a list.") % {"key": "result"}, where=here)
            score = entry.get("score")
            score = None if score is None else number(score, here)
            found = []
            for index, result in enumerate(results):
                if isinstance(result, dict) and result.get("type") == "relation":
                    continue  # a link between two regions: no value, nothing we keep
                if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
                    raise DatasetError(
                        _("A result must be an object with a “value” object."),
                        where=f"{here}.result[{index}]",
                    )
                found.append((result, f"{here}.result[{index}]", score))
            return found
        return []

    def _size(self, results: list[tuple[dict[str, Any], str, float | None]]) -> None:
        checked: tuple[object, object] | None = None
        for result, where, _score in results:
            if "original_width" in result or "original_height" in result:
                given = result.get("original_width"), result.get("original_height")
                if given == checked:
                    continue  # the size of the result before, already checked
                width, height = whole(given[0], where), whole(given[1], where)
                if width <= 0 or height <= 0:
                    raise DatasetError(
                        _("The image's width and height must be positive."), where=where
                    )
                check_pixels(width, height, where, self.max_pixels)
                if self.width and (width, height) != (self.width, self.height):
                    raise DatasetError(_("The results give different image sizes."), where=where)
                self.width, self.height = width, height
                checked = given

    def _shapes(
        self, results: list[tuple[dict[str, Any], str, float | None]]
    ) -> tuple[list[Shape], list[str]]:
        regions: dict[str, tuple[dict[str, Any], str, float | None]] = {}
        attributes: dict[str, dict[str, str]] = {}
        tags: list[str] = []
        for result, where, score in results:
            region = result.get("id")
            if result.get("type") in _REGIONS:
                # Regions without an id cannot carry attributes; `where` keeps them apart.
                key = region if isinstance(region, str) and region else where
                regions[key] = (result, where, score)
                attributes[key] = {}
        for result, where, _score in results:
            kind, value, region = result.get("type"), result["value"], str(result.get("id"))
            if kind in ("choices", "textarea") and region in regions:
                texts = value.get("choices" if kind == "choices" else "text") or []
                name = result.get("from_name")
                if isinstance(name, str) and texts and isinstance(texts[0], str):
                    attributes[region][name] = texts[0]
            elif kind == "choices":
                choices = value.get("choices") or []
                if not isinstance(choices, list):
                    raise DatasetError(
                        _("“%(key)s” must be a list.") % {"key": "choices"}, where=where
                    )
                for choice in choices:
                    index = self.tags.add(choice, where)
                    if self.tags.names[index] not in tags:
                        tags.append(self.tags.names[index])
            elif isinstance(kind, str) and kind.endswith("labels") and kind not in _REGIONS:
                self.skipped[kind] += 1
            elif kind not in _OTHER_KINDS and kind not in _REGIONS:
                raise DatasetError(
                    _("“%(type)s” is not a kind of result Label Studio has.")
                    % {"type": str(kind)[:40]},
                    where=where,
                )
        shapes = [
            self._shape(result, where, score, attributes[region])
            for region, (result, where, score) in regions.items()
        ]
        return shapes, tags

    def _shape(
        self, result: dict[str, Any], where: str, score: float | None, attributes: dict[str, str]
    ) -> Shape:
        kind, value = result["type"], result["value"]
        names = value.get(kind)
        if not isinstance(names, list) or not names:
            raise DatasetError(_("The region has no label."), where=where)
        label = self.labels.add(names[0], where)
        if "score" in result:
            score = number(result["score"], where)
        width, height = self.width, self.height
        across, down = width / 100, height / 100  # one percent, in pixels

        def pixel(x: object, y: object) -> tuple[float, float]:
            return number(x, where) * across, number(y, where) * down

        if kind == "rectanglelabels":
            x, y = pixel(value.get("x"), value.get("y"))
            w, h = pixel(value.get("width"), value.get("height"))
            if w <= 0 or h <= 0:
                raise DatasetError(
                    _("The box has no area: its width or height is zero."), where=where
                )
            angle = math.radians(number(value.get("rotation", 0), where))
            if abs(angle) < 1e-9:
                kind_, points = ShapeType.BOX, [(x, y), (x + w, y + h)]
            else:
                # Label Studio turns the box about its top-left corner, clockwise on screen.
                c, s = math.cos(angle), math.sin(angle)
                kind_ = ShapeType.POLYGON
                points = [
                    (x, y),
                    (x + w * c, y + w * s),
                    (x + w * c - h * s, y + w * s + h * c),
                    (x - h * s, y + h * c),
                ]
        elif kind == "polygonlabels":
            raw = value.get("points")
            if not isinstance(raw, list) or not all(
                isinstance(p, list) and len(p) == 2 for p in raw
            ):
                raise DatasetError(_("“points” must be a list of [x, y] pairs."), where=where)
            kind_, points = ShapeType.POLYGON, [pixel(x, y) for x, y in raw]
        else:
            kind_, points = ShapeType.POINTS, [pixel(value.get("x"), value.get("y"))]
        return make_shape(
            kind_, points, label, width=width, height=height, where=where,
            attributes=attributes, score=score,
        )  # fmt: skip


def file_name_of(image: str | None, ref: str) -> str:
    if image is not None:
        return image[len("images/") :] if image.startswith("images/") else image
    return PurePosixPath(unquote(urlsplit(ref).path)).name or "image"


# ---------------------------------------------------------------------------- JSON-MIN

# Keys Label Studio's JSON-MIN export writes on every record besides the task's data and its
# annotation's results (label-studio-converter, ``convert_to_json_min``).
JSON_MIN_KEYS = frozenset({"annotator", "annotation_id", "created_at", "updated_at", "lead_time"})
_MIN_META = JSON_MIN_KEYS | {"id", "agreement"}
_MIN_KINDS = ("rectanglelabels", "polygonlabels", "keypointlabels", "choices")
_MIN_TEXT = {"text": "textarea", "rating": "rating", "number": "number", "datetime": "datetime"}


def is_json_min(entry: object) -> bool:
    """True for a record of Label Studio's JSON-MIN export (not a task with ``data``)."""
    return isinstance(entry, dict) and "data" not in entry and not JSON_MIN_KEYS.isdisjoint(entry)


def from_json_min(record: dict[str, Any], where: str) -> dict[str, Any]:
    """A JSON-MIN record as the Label Studio task it was flattened from, for `RegionReader`.

    JSON-MIN puts the task's data, its id, and each control's results under the control's name
    (``from_name``) side by side; a result keeps its ``value`` fields and the image size, and
    loses its type and region id. So: a list (or one object) of objects is a control's
    results, its type read from the key it carries (``rectanglelabels``, ``polygonlabels``,
    ``keypointlabels``, ``choices``, another ``…labels`` kind, which is skipped, or a text,
    rating, number or date value, which carries nothing we keep); one choice is written as its
    bare text, so text (or a list of texts) under ``tags`` is the image's tags — text under any
    other name is the task's data. Choices under another name are left out: JSON-MIN drops the
    region ids, so a shape's attribute cannot be told from an image tag there."""
    data: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    for key, value in record.items():
        if key in _MIN_META:
            continue
        if key == "tags" and (
            isinstance(value, str)
            or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        ):
            choices = [value] if isinstance(value, str) else value
            results.append(_min_result("choices", key, {"choices": choices}, {}))
            continue
        regions = [value] if isinstance(value, dict) else value
        if not (
            isinstance(regions, list) and regions and all(isinstance(r, dict) for r in regions)
        ):
            data[key] = value
            continue
        for index, region in enumerate(regions):
            kind = next((k for k in _MIN_KINDS if k in region), None)
            if kind is None:
                kind = next(
                    (k for k in region if isinstance(k, str) and k.endswith("labels")), None
                )
            if kind is None:
                kind = next((_MIN_TEXT[k] for k in _MIN_TEXT if k in region), None)
            if kind is None:
                raise DatasetError(
                    _("This region is of a kind Label Studio does not have."),
                    where=f"{where}.{key}[{index}]",
                )
            if kind == "choices" and key != "tags":
                continue  # its region is not named: an attribute or a tag, nobody can tell
            results.append(_min_result(kind, key, region, region))
    task: dict[str, Any] = {"data": data, "annotations": [{"result": results}]}
    if "id" in record:
        task["id"] = record["id"]
    return task


def _min_result(
    kind: str, from_name: str, value: dict[str, Any], region: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = {"type": kind, "from_name": from_name, "to_name": "image"}
    value = {
        k: v for k, v in value.items() if k not in ("type", "original_width", "original_height")
    }
    for key in ("original_width", "original_height"):
        if key in region:
            result[key] = region[key]
    result["value"] = value
    return result
