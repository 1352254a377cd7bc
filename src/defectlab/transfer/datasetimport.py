"""Importing a dataset into a project, as a job: a zip in one of the loadable `datasets.FORMATS`
becomes tasks with their images, annotations (version 1) and predictions.

The upload is kept in storage under a key fixed by the job's id (`upload_key`) until the import
has landed. The job then:

1. loads it with `datasets.load`, which parses and checks every entry first; the first bad one
   fails the job with a message naming it, and nothing is imported;
2. checks each image for real (`ingest.uploads.checked_image`: decodes, size and pixel limits)
   and that its size is the one the annotations were drawn on, and stores it under a key fixed
   by (job, item) — a rerun overwrites the same keys instead of adding files;
3. in ONE transaction: maps label names to the project's labels (creating the missing ones with
   the dataset's colour), adds unknown tag names, attribute options and shape types to the
   project's schema, creates the tasks, annotations, versions and predictions, moves the
   counters, and records the result on the Job row (``result["committed"]``).

All or nothing: if anything fails before the commit, the images stored so far are deleted again
and no row exists. Idempotent: a run that finds ``committed`` on its job (an earlier run landed
the import and died before the job was marked done) returns that result and does nothing else;
the check is repeated under a lock on the job row inside the transaction, so two runs at once
cannot both commit.

Decisions:

* Label names match the project's labels exactly (after trimming; case counts, as in the label
  editor). A name the project lacks becomes a new label with the dataset's colour, no hotkey,
  ordered after the existing labels. A name longer than a label name may be (100 characters)
  fails the import — cutting it could merge two labels.
* Shape attributes are kept: an attribute or option the label's schema lacks is added to it
  (a new attribute's default is its first value seen), and missing attributes get the label's
  defaults, as when an annotator saves. Empty values are dropped.
* Tags the project lacks are added to it (grey, as the tag editor does); a tag name longer than
  50 characters fails the import. Shape types the project does not use yet (points from CVAT,
  say) are added to its shape types.
* An item with shapes or tags becomes a "submitted" task with annotation version 1 by the person
  who started the import, so reviewers see it; an item without either becomes "new". Splits are
  not kept (a project has none; exports draw them again).
* An archive that gives no item at all (no image, no annotation the format reads) is refused
  with a message saying what it holds instead, never "succeeds" with 0 tasks.
* An item whose image is not in the archive is imported by reference when the dataset gives an
  http(s) address for it (Label Studio); otherwise the import fails naming the image.
* The upload is deleted once the import has landed, or when the dataset is refused (the same
  file would be refused again); after other failures it stays, so the job can be retried.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Max
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from defectlab.datasets import FORMATS, DatasetError, DatasetItem, ImportedDataset, Limits, load
from defectlab.datasets.model import DEFAULT_COLOR
from defectlab.errors import DefectLabError, Invalid, TooLarge
from defectlab.geometry import Shape, ShapeType
from defectlab.images import STORED_SUFFIX
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import (
    Label,
    Project,
    Task,
    TaskStatus,
)
from defectlab.labeling.services import free_color
from defectlab.labeling.tasks import (
    NewAnnotation,
    NewPrediction,
    NewTask,
    add_annotations,
    add_predictions,
    add_tasks,
)
from defectlab.media.storage import LocalStorage, Storage, check_key, default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record

KIND = "dataset_import"
MB = 1024 * 1024
MAX_LABEL_NAME = Label._meta.get_field("name").max_length or 100
MAX_TAG_NAME = 50  # services.clean_tags cuts tag names to this
TAG_COLOR = "#757575"
PREDICTION_MODEL = "import"


def importable_formats() -> list[str]:
    return [name for name, fmt in FORMATS.items() if fmt.loader is not None]


def upload_key(job: Job) -> str:
    return f"org/{job.organization_id}/imports/job-{job.pk}.zip"


def image_key(job: Job, index: int, suffix: str) -> str:
    return f"org/{job.organization_id}/projects/{job.project_id}/imports/job-{job.pk}/{index:06d}{suffix}"


def limits() -> Limits:
    """The import limits, from the settings that bound every upload."""
    archive = settings.MAX_ARCHIVE_MB * MB
    return Limits(
        max_images=settings.MAX_ARCHIVE_FILES,
        max_member_bytes=archive,
        max_total_bytes=archive,
        max_text_bytes=min(512 * MB, archive),
        max_image_pixels=settings.MAX_IMAGE_PIXELS,
    )


# ---------------------------------------------------------------------------- starting


def start_dataset_import(
    project: Project, upload: Any, format_name: str | None, user: User | None
) -> Job:
    """Keep the uploaded zip in storage and start the job that imports it (the message leaves
    once both are committed), in the audit trail as ``user``'s. `upload` is an uploaded file or
    any readable, seekable file."""
    formats = importable_formats()
    if format_name not in formats:
        raise Invalid(
            _("Choose the dataset's format: %(formats)s.") % {"formats": ", ".join(formats)},
            details={"field": "format"},
        )
    name = str(getattr(upload, "name", "") or "dataset.zip")[-255:]
    file: IO[bytes] = upload
    file.seek(0, 2)
    size = file.tell()
    if size > settings.MAX_ARCHIVE_MB * MB:
        raise TooLarge(
            _("%(archive)s is larger than %(limit)s MB.")
            % {"archive": name, "limit": settings.MAX_ARCHIVE_MB}
        )
    file.seek(0)
    if not zipfile.is_zipfile(file):
        raise Invalid(_("%(name)s is not a valid zip archive.") % {"name": name})
    storage = default_storage()
    key: str | None = None
    try:
        with transaction.atomic():
            job = start_job(
                project.organization,
                KIND,
                params={"format": format_name, "file_name": name, "bytes": size},
                user=user,
                project=project,
            )
            key = upload_key(job)
            file.seek(0)
            storage.save_stream(key, file)
            record(
                None,
                AuditAction.PROJECT_DATASET_IMPORT_STARTED,
                organization=project.organization_id,
                target=project,
                actor=user,
                data={"format": format_name, "file_name": name, "job": job.pk},
            )
    except BaseException:
        if key is not None:
            storage.delete(key)
        raise
    return job


# ---------------------------------------------------------------------------- the job


@dataclass
class _Row:
    """One item ready to become a task: its image stored (or referenced) and checked."""

    item: DatasetItem
    image: str
    width: int | None
    height: int | None
    size_bytes: int | None


@dataclass
class _Schema:
    """What the transaction changed in the project's schema, for the job's result."""

    label_ids: list[int] = field(default_factory=list)  # dataset label index -> Label id
    labels: dict[int, Label] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    tags_added: list[str] = field(default_factory=list)
    shape_types_added: list[str] = field(default_factory=list)


def run_dataset_import(job: Job, progress: Progress) -> dict[str, Any]:
    if job.result.get("committed"):
        return dict(job.result)  # an earlier run landed it and died before the job was marked
    project = Project.objects.get(pk=job.project_id or 0)
    storage = default_storage()
    key = upload_key(job)
    if not storage.exists(key):
        raise Invalid(_("The uploaded dataset is no longer in storage; upload it again."))
    try:
        with (
            _local_copy(storage, key, job) as path,
            load(str(job.params.get("format")), path, limits=limits()) as dataset,
        ):
            _check_names(dataset)
            _check_not_empty(dataset, str(job.params.get("format")))
            progress.total(len(dataset.items))
            progress.at(0)
            stored: list[str] = []
            try:
                rows = _store_images(job, dataset, storage, stored, progress)
                result = _commit(job, project, dataset, rows)
            except BaseException:
                if _committed(job) is False:
                    for image in stored:
                        storage.delete(image)
                raise
    except DefectLabError:
        storage.delete(key)  # refused: the same file would be refused again
        raise
    storage.delete(key)
    return result


@contextmanager
def _local_copy(storage: Storage, key: str, job: Job) -> Iterator[Path]:
    """A path to the uploaded zip: the stored file itself on local storage, else a copy in the
    data directory named by the job (a killed run's copy is overwritten by the next run)."""
    if isinstance(storage, LocalStorage):
        yield storage.root.joinpath(*check_key(key).parts)
        return
    folder = Path(settings.DATA_DIR) / "work"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dataset-import-{job.pk}.zip"
    try:
        with storage.open(key) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, MB)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _committed(job: Job) -> bool | None:
    """Whether some run of `job` has committed its import; None when the database cannot say
    (then the stored images are kept: they may be in use, and a rerun overwrites them)."""
    try:
        result = Job.objects.filter(pk=job.pk).values_list("result", flat=True).first()
    except DatabaseError:
        return None
    return isinstance(result, dict) and bool(result.get("committed"))


def _check_names(dataset: ImportedDataset) -> None:
    """Refuse label and tag names the project could not hold, before any image is stored."""
    for name in dataset.labels:
        if len(name) > MAX_LABEL_NAME:
            raise DatasetError(
                _("The label name “%(name)s” is longer than %(limit)s characters.")
                % {"name": _shown(name), "limit": MAX_LABEL_NAME}
            )
    for name in dataset.header.tags:
        if len(name) > MAX_TAG_NAME:
            raise DatasetError(
                _("The tag name “%(name)s” is longer than %(limit)s characters.")
                % {"name": _shown(name), "limit": MAX_TAG_NAME}
            )


def _check_not_empty(dataset: ImportedDataset, format_name: str) -> None:
    """An import that would bring nothing is refused, saying what the archive holds instead."""
    if dataset.items:
        return
    names = dataset.source.names() if dataset.source is not None else []
    if not names:
        raise DatasetError(_("The archive is empty; nothing was imported."))
    message = ngettext(
        "Nothing to import: the archive's %(count)s file (“%(example)s”) holds no image or annotation that the %(format)s format reads.",
        "Nothing to import: the archive's %(count)s files (“%(example)s”, …) hold no image or annotation that the %(format)s format reads.",
        len(names),
    )
    raise DatasetError(
        message
        % {"count": len(names), "example": _shown(names[0]), "format": FORMATS[format_name].title}
    )


def _shown(name: str) -> str:
    return name[:60] + "…" if len(name) > 60 else name


def _store_images(
    job: Job, dataset: ImportedDataset, storage: Storage, stored: list[str], progress: Progress
) -> list[_Row]:
    rows = []
    limit = settings.MAX_UPLOAD_MB * MB
    for index, item in enumerate(dataset.items):
        if item.image is None:
            rows.append(_reference(item))
            progress.step()
            continue
        try:
            with item.image() as file:
                data = file.read(limit + 1)
        except OSError as error:
            raise DatasetError(_("This entry is damaged."), where=item.file_name) from error
        image = checked_image(item.file_name, data)
        width, height = image.info.width, image.info.height
        if item.width and (item.width, item.height) != (width, height):
            raise DatasetError(
                _(
                    "The annotations were drawn on a %(given)s image, but the image is %(actual)s pixels."
                )
                % {"given": f"{item.width}×{item.height}", "actual": f"{width}×{height}"},
                where=item.file_name,
            )
        key = image_key(job, index, STORED_SUFFIX[image.info.format])
        stored.append(key)  # before saving: a half-written file is cleaned up as well
        storage.save(key, data)
        rows.append(_Row(item, key, width, height, len(data)))
        progress.step()
    return rows


def _reference(item: DatasetItem) -> _Row:
    """An item whose image is not in the archive: kept by its http(s) address, or refused."""
    ref = item.image_ref or ""
    parts = urlsplit(ref)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(ref) > 1024:
        raise DatasetError(_("This image is not in the archive."), where=ref or item.file_name)
    return _Row(item, ref, item.width or None, item.height or None, None)


def _commit(
    job: Job, project: Project, dataset: ImportedDataset, rows: Sequence[_Row]
) -> dict[str, Any]:
    """Everything the checked rows bring lands in one transaction, once per job: the widened
    schema, the tasks, their annotations and predictions, the counters; the job's result says
    what landed."""
    with transaction.atomic():
        # The job row's lock serialises two runs of one job; the second finds the first's mark.
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.result.get("committed"):
            return dict(locked.result)
        project = Project.objects.select_for_update().get(pk=project.pk)
        schema = _apply_schema(project, dataset)
        tasks = _create_tasks(project, rows)
        submitted, predictions = _create_annotations_and_predictions(
            job, project, schema, tasks, rows
        )
        result = {
            "committed": True,
            "format": job.params.get("format"),
            "tasks": len(tasks),
            "annotated": submitted,
            "images": sum(1 for row in rows if row.size_bytes is not None),
            "references": sum(1 for row in rows if row.size_bytes is None),
            "predictions": predictions,
            "labels_created": schema.created,
            "labels_extended": schema.extended,
            "tags_added": schema.tags_added,
            "shape_types_added": schema.shape_types_added,
            "warnings": list(dataset.warnings),
        }
        Job.objects.filter(pk=job.pk).update(result=result)
    return result


def _create_tasks(project: Project, rows: Sequence[_Row]) -> list[Task]:
    """One task per row: submitted when the dataset annotated it, new otherwise."""
    return add_tasks(
        project,
        [
            NewTask(
                image=row.image,
                file_name=row.item.file_name,
                width=row.width,
                height=row.height,
                size_bytes=row.size_bytes,
                status=TaskStatus.SUBMITTED if _annotated(row.item) else TaskStatus.NEW,
                has_annotation=_annotated(row.item),
                has_prediction=bool(row.item.predictions),
            )
            for row in rows
        ],
    )


def _create_annotations_and_predictions(
    job: Job, project: Project, schema: _Schema, tasks: Sequence[Task], rows: Sequence[_Row]
) -> tuple[int, int]:
    """The rows' annotations (version 1, by whoever started the job, with their history and
    label index) and predictions, for the tasks just created; how many of each."""
    annotations: list[NewAnnotation] = []
    predictions: list[NewPrediction] = []
    for task, row in zip(tasks, rows, strict=True):
        item = row.item
        if item.predictions:
            predictions.append(
                NewPrediction(
                    task=task,
                    model_name=PREDICTION_MODEL,
                    model_version=str(job.params.get("format", "")),
                    shapes=_shapes(item.predictions, schema, keep_scores=True),
                )
            )
        if _annotated(item):
            annotations.append(
                NewAnnotation(
                    task=task,
                    shapes=_shapes(item.shapes, schema, keep_scores=False),
                    tags=list(item.tags),
                )
            )
    add_annotations(annotations, author_id=job.started_by_id)
    add_predictions(predictions)
    return len(annotations), len(predictions)


def _annotated(item: DatasetItem) -> bool:
    return bool(item.shapes or item.tags)


def _apply_schema(project: Project, dataset: ImportedDataset) -> _Schema:
    """Map the dataset's label names to the project's labels and widen the project's schema
    (labels, attribute options, tags, shape types) to hold what the dataset brings."""
    schema = _Schema()
    existing = {label.name: label for label in Label.objects.filter(project=project)}
    order = (Label.objects.filter(project=project).aggregate(top=Max("order"))["top"] or 0) + 1
    seen = _attributes_seen(dataset)
    for index, header_label in enumerate(dataset.header.labels):
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
    schema.tags_added = [tag for tag in dataset.header.tags if tag not in known_tags]
    used_types = {
        shape.type.value for item in dataset.items for shape in (*item.shapes, *item.predictions)
    }
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


def _attributes_seen(dataset: ImportedDataset) -> dict[int, dict[str, list[str]]]:
    """Per dataset label index: each attribute name and its values, in first-seen order."""
    seen: dict[int, dict[str, list[str]]] = {}
    for item in dataset.items:
        for shape in (*item.shapes, *item.predictions):
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


def _shapes(shapes: Sequence[Shape], schema: _Schema, *, keep_scores: bool) -> list[dict[str, Any]]:
    """The dataset's shapes as stored JSON: project label ids, attributes with the label's
    defaults filled in (as an annotator's save does), scores only on predictions."""
    result = []
    for shape in shapes:
        label_id = schema.label_ids[shape.label]
        values = _clean_attributes(shape.attributes)
        for attribute in schema.labels[label_id].attributes:
            values.setdefault(attribute["name"], attribute["default"])
        result.append(
            Shape(
                shape.type,
                shape.points,
                label_id,
                values,
                shape.score if keep_scores else None,
                shape.id,
            ).to_dict()
        )
    return result
