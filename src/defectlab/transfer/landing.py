"""Landing checked tasks with their annotations and predictions in a project: the step the
dataset import (`transfer.datasetimport`) and the task import (`transfer.taskimport`) share.

Within the caller's transaction, `land`:

* maps label names to the project's labels, creating the missing ones (with the dataset's
  colour, or a free one; no hotkey; ordered after the existing labels); widens labels'
  attributes to the values seen; adds unknown tag names and shape types to the project;
* creates the tasks (`labeling.tasks.insert_tasks`: one ``executemany`` on reserved ids), a task
  with shapes or tags "submitted" with annotation version 1 by ``author_id``, one without
  "new"; then their annotations, versions and label index (`insert_annotations`) and
  predictions (`insert_predictions`), each table by one ``executemany``; the project's
  counters move with the tasks.

Stored shapes are `Shape.to_dict` with the project's label id, the label's attribute defaults
filled in (as an annotator's save does) and scores on predictions only.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max
from django.utils.translation import gettext as _

from defectlab.datasets import DatasetError, DatasetHeader
from defectlab.datasets.model import DEFAULT_COLOR
from defectlab.geometry import Shape, ShapeType
from defectlab.labeling.models import Label, Project, TaskStatus
from defectlab.labeling.services import free_color
from defectlab.labeling.tasks import (
    AnnotationRow,
    NewTask,
    PredictionRow,
    insert_annotations,
    insert_predictions,
    insert_tasks,
)

MAX_LABEL_NAME = Label._meta.get_field("name").max_length or 100
MAX_TAG_NAME = 50  # services.clean_tags cuts tag names to this
TAG_COLOR = "#757575"
PREDICTION_MODEL = "import"


_paused = 0
_paused_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a bulk import reads and lands its rows.

    Reading a large JSON body makes hundreds of thousands of objects that all stay alive, and
    every few hundred allocations the collector walks them again, in vain: with it running, a
    10k-task Label Studio import spent more time collecting than reading (bench/tasks.py). Rows
    and shapes hold no reference cycles, so nothing waits for the collector; it runs again when
    the last import of the process leaves (imports in other threads of the process count)."""
    global _paused
    with _paused_lock:
        _paused += 1
        if _paused == 1:
            gc.disable()
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0:
                gc.enable()


@dataclass(slots=True)
class LandRow:
    """One task to create (its image and size; `land` sets its status and flags), its shapes
    (labels index the header's labels) and image tags, and its predictions as (model name,
    model version, shapes)."""

    task: NewTask
    shapes: Sequence[Shape] = ()
    tags: Sequence[str] = ()
    predictions: Sequence[tuple[str, str, Sequence[Shape]]] = ()


@dataclass
class Schema:
    """What the transaction changed in the project's schema, for the caller's answer."""

    label_ids: list[int] = field(default_factory=list)  # dataset label index -> Label id
    labels: dict[int, Label] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    tags_added: list[str] = field(default_factory=list)
    shape_types_added: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, list[str]]:
        return {
            "labels_created": self.created,
            "labels_extended": self.extended,
            "tags_added": self.tags_added,
            "shape_types_added": self.shape_types_added,
        }


@dataclass(frozen=True, slots=True)
class Landed:
    task_ids: list[int]
    annotated: int
    predictions: int
    schema: Schema


def land(
    project: Project, header: DatasetHeader, rows: Sequence[LandRow], *, author_id: int | None
) -> Landed:
    """Everything the rows bring, in the caller's transaction (see the module docstring)."""
    check_names(header)
    project = Project.objects.select_for_update().get(pk=project.pk)
    schema = _apply_schema(
        project,
        header,
        (shape for row in rows for shape in _all_shapes(row)),
    )
    tasks = []
    for row in rows:
        task = row.task
        if row.shapes or row.tags:
            task.status, task.has_annotation = TaskStatus.SUBMITTED, True
            task.shape_count = len(row.shapes)
        task.has_prediction = bool(row.predictions)
        tasks.append(task)
    task_ids = insert_tasks(project, tasks)
    organization_id = project.organization_id
    annotations = [
        AnnotationRow(
            task_id,
            organization_id,
            _stored(row.shapes, schema, keep_scores=False),
            list(row.tags),
            row.task.width,
            row.task.height,
            project.pk,
        )
        for task_id, row in zip(task_ids, rows, strict=True)
        if row.shapes or row.tags
    ]
    predictions = [
        PredictionRow(
            task_id, organization_id, model, version, _stored(shapes, schema, keep_scores=True)
        )
        for task_id, row in zip(task_ids, rows, strict=True)
        for model, version, shapes in row.predictions
    ]
    insert_annotations(annotations, author_id=author_id, counted_tasks=True)
    insert_predictions(predictions, mark_tasks=False)
    return Landed(task_ids, len(annotations), len(predictions), schema)


def _all_shapes(row: LandRow) -> Iterable[Shape]:
    yield from row.shapes
    for _model, _version, shapes in row.predictions:
        yield from shapes


def check_names(header: DatasetHeader) -> None:
    """Refuse label and tag names the project could not hold, before any image is stored."""
    for name in header.label_names:
        if len(name) > MAX_LABEL_NAME:
            raise DatasetError(
                _("The label name “%(name)s” is longer than %(limit)s characters.")
                % {"name": _shown(name), "limit": MAX_LABEL_NAME}
            )
    for name in header.tags:
        if len(name) > MAX_TAG_NAME:
            raise DatasetError(
                _("The tag name “%(name)s” is longer than %(limit)s characters.")
                % {"name": _shown(name), "limit": MAX_TAG_NAME}
            )


def _shown(name: str) -> str:
    return name[:60] + "…" if len(name) > 60 else name


def _apply_schema(project: Project, header: DatasetHeader, shapes: Iterable[Shape]) -> Schema:
    """Map the header's label names to the project's labels and widen the project's schema
    (labels, attribute options, tags, shape types) to hold what the shapes bring."""
    schema = Schema()
    existing = {label.name: label for label in Label.objects.filter(project=project)}
    order = (Label.objects.filter(project=project).aggregate(top=Max("order"))["top"] or 0) + 1
    used_types: set[str] = set()
    seen = _attributes_seen(shapes, used_types)
    for index, header_label in enumerate(header.labels):
        label = existing.get(header_label.name)
        wanted = seen.get(index, {})
        if label is None:
            label = Label.objects.create(
                organization_id=project.organization_id,
                project=project,
                name=header_label.name,
                # A format without colours (YOLO, VOC, …) leaves the default: pick a free one.
                color=header_label.color
                if header_label.color != DEFAULT_COLOR
                else free_color(project),
                attributes=[
                    {"name": name, "options": values, "default": values[0]}
                    for name, values in wanted.items()
                ],
                order=order,
            )
            order += 1
            schema.created.append(label.name)
        elif _widen(label, wanted):
            label.save(update_fields=["attributes"])
            schema.extended.append(label.name)
        schema.label_ids.append(label.pk)
        schema.labels[label.pk] = label
    known_tags = {tag["name"] for tag in project.tags}
    schema.tags_added = [tag for tag in header.tags if tag not in known_tags]
    schema.shape_types_added = [
        kind.value for kind in ShapeType if kind in used_types and kind not in project.shape_types
    ]
    if schema.tags_added or schema.shape_types_added:
        project.tags = [
            *project.tags,
            *({"name": tag, "color": TAG_COLOR} for tag in schema.tags_added),
        ]
        project.shape_types = [*project.shape_types, *schema.shape_types_added]
        project.save(update_fields=["tags", "shape_types"])
    return schema


def _attributes_seen(
    shapes: Iterable[Shape], used_types: set[str]
) -> dict[int, dict[str, list[str]]]:
    """Per header label index: each attribute name and its values, in first-seen order; the
    shape types met go into ``used_types``."""
    seen: dict[int, dict[str, list[str]]] = {}
    for shape in shapes:
        used_types.add(shape.type.value)
        if shape.attributes:
            for name, value in _clean_attributes(shape.attributes).items():
                values = seen.setdefault(shape.label, {}).setdefault(name, [])
                if value not in values:
                    values.append(value)
    return seen


def _clean_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    return {name.strip(): value for name, value in attributes.items() if name.strip() and value}


def _widen(label: Label, wanted: Mapping[str, list[str]]) -> bool:
    """Add the attributes and options `label` lacks; True when it changed."""
    changed = False
    attributes = [dict(attribute) for attribute in label.attributes]
    by_name = {attribute["name"]: attribute for attribute in attributes}
    for name, values in wanted.items():
        attribute = by_name.get(name)
        if attribute is None:
            attribute = {"name": name, "options": list(values), "default": values[0]}
            attributes.append(attribute)
            by_name[name] = attribute
            changed = True
            continue
        missing = [value for value in values if value not in attribute["options"]]
        if missing:
            attribute["options"] = [*attribute["options"], *missing]
            changed = True
    if changed:
        label.attributes = attributes
    return changed


def _stored(shapes: Sequence[Shape], schema: Schema, *, keep_scores: bool) -> list[dict[str, Any]]:
    """The shapes as stored JSON (`Shape.to_dict`, checked already): the project's label id,
    attributes with the label's defaults filled in (as an annotator's save does), scores only
    on predictions."""
    result = []
    for shape in shapes:
        label_id = schema.label_ids[shape.label]
        defaults = schema.labels[label_id].attributes
        stored = shape.to_dict()
        stored["label"] = label_id
        if shape.attributes or defaults:
            values = _clean_attributes(shape.attributes)
            for attribute in defaults:
                values.setdefault(attribute["name"], attribute["default"])
            stored["attributes"] = values
        if not keep_scores:
            stored.pop("score", None)
        result.append(stored)
    return result
