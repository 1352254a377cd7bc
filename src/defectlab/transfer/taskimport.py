"""Importing tasks kept by reference, with their annotations and predictions, in one call
(``POST /api/projects/{id}/import/``).

A body (or an uploaded ``.json`` file) is a JSON list; each entry is one of:

* an image address, or our own task: ``{"image": "https://…", "file_name", "width",
  "height", "annotations": [{"shapes": [...], "tags": [...]}], "predictions":
  [{"model_name", "model_version", "shapes": [...]}]}`` — shapes in our own form
  (``geometry.Shape.to_dict``: image pixels), their ``label`` a label name or a label id of this
  project;
* a Label Studio task, ``{"data": {"image": …}, "annotations": [...], "predictions": [...]}``,
  as its JSON export writes it: read by ``datasets.labelstudio.RegionReader``, the same rules as
  the Label Studio dataset format;
* a record of Label Studio's JSON-MIN export (``datasets.labelstudio.from_json_min``); records
  of one task (JSON-MIN writes one per annotation, the latest first) are one task: the first
  record is kept.

``{"tasks": [...]}`` and a single Label Studio task object are accepted as well.

Everything is checked before anything lands; the first bad entry is refused naming it (400) and
nothing is imported. Labels, tags and shape types the project lacks are created
(``transfer.landing``, as the dataset import does). A task with shapes or tags becomes
"submitted" with annotation version 1 by the importing person.

Up to `SYNC_TASKS` tasks and `SYNC_SHAPES` shapes the import lands in the request; above
either, the checked body is kept in storage and a job (`KIND`) lands it — re-checked, in one
transaction, once (its result carries ``committed``; a rerun answers that result).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from defectlab.datasets import DatasetError, DatasetHeader
from defectlab.datasets.common import Names, make_header, make_shape, parse_json, skipped_warning
from defectlab.datasets.labelstudio import (
    RegionReader,
    from_json_min,
    image_of,
    is_json_min,
)
from defectlab.errors import DefectLabError, Invalid, TooLarge
from defectlab.geometry import Shape, ShapeError
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Label, Project
from defectlab.labeling.services import reference_row
from defectlab.media.references import s3_resolver
from defectlab.media.storage import default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record
from defectlab.transfer.landing import PREDICTION_MODEL, LandRow, collector_paused, land

KIND = "task_import"
SYNC_TASKS = 100_000  # at most this many tasks land in the request ...
SYNC_SHAPES = 100_000  # ... and at most this many shapes (annotations and predictions)
LISTED_IDS = 10_000  # the answer lists every created task's id up to this many
MB = 1024 * 1024
PLAIN = frozenset({"image", "file_name", "width", "height"})  # a task by reference, no shapes
OURS = PLAIN | {"annotations", "predictions"}
LABEL_STUDIO_VERSION = "labelstudio"


def max_bytes() -> int:
    return int(settings.MAX_IMPORT_MB) * MB


@dataclass
class Parsed:
    """A checked import: the tasks to create, the label and tag names they use."""

    header: DatasetHeader
    rows: list[LandRow]
    shapes: int = 0
    duplicates: int = 0  # JSON-MIN records of a task already read
    warnings: list[str] = field(default_factory=list)

    @property
    def synchronous(self) -> bool:
        return len(self.rows) <= SYNC_TASKS and self.shapes <= SYNC_SHAPES


# ---------------------------------------------------------------------------- reading


def read_body(data: bytes, name: str | None = None) -> Any:
    """The JSON of an import body or file (refused when larger than DEFECTLAB_MAX_IMPORT_MB)."""
    if len(data) > max_bytes():
        raise TooLarge(
            _("A task import is at most %(limit)s MB; send it in parts.")
            % {"limit": settings.MAX_IMPORT_MB}
        )
    if not data.strip():
        raise Invalid(_("Send a non-empty JSON list of tasks."))
    return parse_json(data, name or _("the request body"))


def entries_of(data: Any) -> list[Any]:
    if isinstance(data, dict):
        data = data.get("tasks", [data])
    if not isinstance(data, list) or not data:
        raise Invalid(_("Send a non-empty JSON list of tasks."))
    return data


def parse_tasks(project: Project, data: Any) -> Parsed:
    """Every entry checked and read (see the module docstring); the first bad one raises."""
    entries = entries_of(data)
    labels, tags, skipped = Names(), Names(), Counter[str]()
    reader = _Reader(project, labels, tags, RegionReader(labels, tags, skipped, _max_pixels()))
    rows: list[LandRow] = []
    seen_min: set[Any] = set()
    duplicates = 0
    s3 = reader.s3
    for index, entry in enumerate(entries):
        kind = type(entry)
        if kind is str or (kind is dict and PLAIN.issuperset(entry)):
            # The commonest entries, an address or an image with its size, read without the rest
            rows.append(LandRow(reference_row(s3, index, entry)))
            continue
        json_min = is_json_min(entry)
        if json_min:
            task_id = entry.get("id")
            if task_id is not None:
                if task_id in seen_min:
                    duplicates += 1
                    continue
                seen_min.add(task_id)
        rows.append(reader.read(index, entry, json_min))
    warnings = skipped_warning(skipped)
    return Parsed(make_header(labels, tags), rows, reader.shapes, duplicates, warnings)


def _max_pixels() -> int:
    return int(settings.MAX_IMAGE_PIXELS)


class _Reader:
    def __init__(self, project: Project, labels: Names, tags: Names, regions: RegionReader):
        self.project, self.labels, self.tags, self.regions = project, labels, tags, regions
        self.s3 = s3_resolver(project.pk)
        self.shapes = 0
        self._label_names: dict[int, str] | None = None
        self._where: str | None = None

    def read(self, index: int, entry: Any, json_min: bool) -> LandRow:
        if self._where is None:  # translated once: a gettext per task was a fifth of the time
            self._where = _("task %(number)s")
        where = self._where % {"number": index + 1}
        if json_min or (isinstance(entry, dict) and "data" in entry):
            return self._label_studio(index, entry, where)
        return self._ours(index, entry, where)

    def _label_studio(self, index: int, entry: dict[str, Any], where: str) -> LandRow:
        task = from_json_min(entry, where) if "data" not in entry else entry
        ref = image_of(task, where)
        read = self.regions.read(task, where)
        size = {"width": read.width or None, "height": read.height or None}
        new = reference_row(self.s3, index, {"image": ref, **size})
        self.shapes += len(read.shapes) + len(read.predictions)
        predictions = [(PREDICTION_MODEL, LABEL_STUDIO_VERSION, read.predictions)]
        return LandRow(
            new,
            shapes=read.shapes,
            tags=read.tags,
            predictions=predictions if read.predictions else [],
        )

    def _ours(self, index: int, entry: Any, where: str) -> LandRow:
        if isinstance(entry, dict) and not OURS.issuperset(entry):
            unknown = sorted(str(key) for key in entry if key not in OURS)
            if unknown:
                raise DatasetError(
                    _(
                        "Unknown field “%(field)s”: a task has %(fields)s (or is a Label Studio task with “data”)."
                    )
                    % {"field": unknown[0][:40], "fields": ", ".join(sorted(OURS))},
                    where=where,
                )
        new = reference_row(self.s3, index, entry)
        if not isinstance(entry, dict) or (
            entry.get("annotations") is None and entry.get("predictions") is None
        ):
            return LandRow(new)
        width, height = new.width or 0, new.height or 0
        shapes: list[Shape] = []
        tags: list[str] = []
        annotations = entry.get("annotations")
        if annotations is not None:
            if isinstance(annotations, dict):
                annotations = [annotations]
            if not isinstance(annotations, list) or len(annotations) > 1:
                raise DatasetError(
                    _("“annotations” is a list of at most one annotation: a task has one."),
                    where=where,
                )
            for annotation in annotations:
                here = f"{where}.annotations[0]"
                if not isinstance(annotation, dict):
                    raise DatasetError(_("A JSON object was expected here."), where=here)
                shapes = self._shapes(annotation.get("shapes"), here, width, height, False)
                tags = self._tags(annotation.get("tags"), here)
        predictions: list[tuple[str, str, Sequence[Shape]]] = []
        raw = entry.get("predictions")
        if raw is not None:
            if not isinstance(raw, list):
                raise DatasetError(
                    _("“%(key)s” must be a list.") % {"key": "predictions"}, where=where
                )
            for position, prediction in enumerate(raw):
                here = f"{where}.predictions[{position}]"
                if not isinstance(prediction, dict):
                    raise DatasetError(_("A JSON object was expected here."), where=here)
                model = prediction.get("model_name", PREDICTION_MODEL)
                version = prediction.get("model_version", "")
                if not isinstance(model, str) or not model.strip() or not isinstance(version, str):
                    raise DatasetError(
                        _("A prediction needs a model name (and its version as text)."), where=here
                    )
                found = self._shapes(prediction.get("shapes"), here, width, height, True)
                predictions.append((model, version, found))
        self.shapes += len(shapes) + sum(len(found) for _m, _v, found in predictions)
        return LandRow(new, shapes, tags, predictions)

    def _shapes(self, raw: Any, where: str, width: int, height: int, scores: bool) -> list[Shape]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise DatasetError(_("“%(key)s” must be a list.") % {"key": "shapes"}, where=where)
        shapes = []
        for position, data in enumerate(raw):
            here = f"{where}.shapes[{position}]"
            if not isinstance(data, dict):
                raise DatasetError(_("A JSON object was expected here."), where=here)
            label = self._label(data.get("label"), here)
            try:
                shape = Shape.from_dict({**data, "label": label})
            except ShapeError as error:
                raise DatasetError(str(error), where=here) from None
            shapes.append(
                make_shape(
                    shape.type, shape.points, label, width=width, height=height, where=here,
                    attributes=shape.attributes, score=shape.score if scores else None,
                )
            )  # fmt: skip
        return shapes

    def _label(self, value: Any, where: str) -> int:
        """A shape's label, by name or by a label id of this project, as its index in names."""
        if isinstance(value, int) and not isinstance(value, bool):
            if self._label_names is None:
                self._label_names = dict(
                    Label.objects.filter(project_id=self.project.pk).values_list("id", "name")
                )
            name = self._label_names.get(value)
            if name is None:
                raise DatasetError(
                    _("Label %(label)s is not a label of this project.") % {"label": value},
                    where=where,
                )
            value = name
        return self.labels.add(value, where)

    def _tags(self, raw: Any, where: str) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise DatasetError(_("Image tags must be a list of tag names."), where=where)
        return [self.tags.names[self.tags.add(tag, where)] for tag in raw]


# ---------------------------------------------------------------------------- landing


def import_tasks(
    project: Project, data: bytes, actor: User | None, *, file_name: str | None = None
) -> tuple[dict[str, Any] | None, Job | None]:
    """Check the import and land it now (the answer), or when it is above the synchronous
    size, keep it and start its job (the job). The caller checks the actor's role."""
    with collector_paused():
        parsed = parse_tasks(project, read_body(data, file_name))
        if parsed.synchronous:
            with transaction.atomic():
                answer = _land(project, parsed, actor.pk if actor else None)
                _audit(project, actor, answer["created"], None)
            return answer, None
    return None, _start(project, data, parsed, actor, file_name)


def upload_key(job: Job) -> str:
    return f"org/{job.organization_id}/imports/job-{job.pk}-tasks.json"


def _start(
    project: Project, data: bytes, parsed: Parsed, actor: User | None, file_name: str | None
) -> Job:
    storage = default_storage()
    key: str | None = None
    try:
        with transaction.atomic():
            job = start_job(
                project.organization,
                KIND,
                params={
                    "file_name": (file_name or "")[-255:],
                    "bytes": len(data),
                    "tasks": len(parsed.rows),
                    "shapes": parsed.shapes,
                },
                user=actor,
                project=project,
            )
            key = upload_key(job)
            storage.save(key, data)
    except BaseException:
        if key is not None:
            storage.delete(key)
        raise
    return job


def run_task_import(job: Job, progress: Progress) -> dict[str, Any]:
    """The job: read the kept body again, check it, land it once (idempotent)."""
    if job.result.get("committed"):
        return dict(job.result)
    project = Project.objects.get(pk=job.project_id or 0)
    storage = default_storage()
    key = upload_key(job)
    if not storage.exists(key):
        raise Invalid(_("The import is no longer in storage; send it again."))
    with storage.open(key) as file:
        data = file.read()
    try:
        with collector_paused():
            parsed = parse_tasks(project, read_body(data, job.params.get("file_name") or None))
            progress.total(len(parsed.rows))
            with transaction.atomic():
                locked = Job.objects.select_for_update().get(pk=job.pk)
                if locked.result.get("committed"):
                    return dict(locked.result)
                result = {"committed": True, **_land(project, parsed, job.started_by_id)}
                Job.objects.filter(pk=job.pk).update(result=result)
                _audit(project, job.started_by, result["created"], job.pk)
    except DefectLabError:
        storage.delete(key)  # refused: the same body would be refused again
        raise
    progress.at(len(parsed.rows))
    storage.delete(key)
    return result


def _land(project: Project, parsed: Parsed, author_id: int | None) -> dict[str, Any]:
    landed = land(project, parsed.header, parsed.rows, author_id=author_id)
    ids = landed.task_ids
    answer: dict[str, Any] = {
        "created": len(ids),
        "annotated": landed.annotated,
        "predictions": landed.predictions,
        "first_id": ids[0],
        "last_id": ids[-1],
        "ranges": id_ranges(ids),
    }
    if len(ids) <= LISTED_IDS:
        answer["task_ids"] = ids
    answer.update(landed.schema.summary())
    answer["duplicates_skipped"] = parsed.duplicates
    answer["warnings"] = parsed.warnings
    return answer


def id_ranges(ids: Sequence[int]) -> list[list[int]]:
    """Increasing ids as runs of consecutive ones, ``[[first, last], ...]``."""
    ranges: list[list[int]] = []
    for task_id in ids:
        if ranges and ranges[-1][1] + 1 == task_id:
            ranges[-1][1] = task_id
        else:
            ranges.append([task_id, task_id])
    return ranges


def _audit(project: Project, actor: User | None, count: int, job: int | None) -> None:
    record(
        None,
        AuditAction.TASKS_IMPORTED,
        organization=project.organization_id,
        target=project,
        actor=actor,
        data={"count": count, **({"job": job} if job else {})},
    )
