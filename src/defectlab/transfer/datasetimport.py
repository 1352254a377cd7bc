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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from defectlab.datasets import FORMATS, DatasetError, DatasetItem, ImportedDataset, Limits, load
from defectlab.errors import DefectLabError, Invalid, TooLarge
from defectlab.images import STORED_SUFFIX
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Project
from defectlab.labeling.tasks import NewTask
from defectlab.media.storage import LocalStorage, Storage, check_key, default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record
from defectlab.transfer.landing import PREDICTION_MODEL, LandRow, check_names, land

KIND = "dataset_import"
MB = 1024 * 1024


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
            check_names(dataset.header)
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
    """Everything the checked rows bring lands in one transaction, once per job
    (`landing.land`: the widened schema, the tasks, their annotations and predictions, the
    counters); the job's result says what landed."""
    with transaction.atomic():
        # The job row's lock serialises two runs of one job; the second finds the first's mark.
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.result.get("committed"):
            return dict(locked.result)
        version = str(job.params.get("format", ""))
        landed = land(
            project,
            dataset.header,
            [
                LandRow(
                    NewTask(row.image, row.item.file_name, row.width, row.height, row.size_bytes),
                    shapes=row.item.shapes,
                    tags=row.item.tags,
                    predictions=[(PREDICTION_MODEL, version, row.item.predictions)]
                    if row.item.predictions
                    else [],
                )
                for row in rows
            ],
            author_id=job.started_by_id,
        )
        result = {
            "committed": True,
            "format": job.params.get("format"),
            "tasks": len(landed.task_ids),
            "annotated": landed.annotated,
            "images": sum(1 for row in rows if row.size_bytes is not None),
            "references": sum(1 for row in rows if row.size_bytes is None),
            "predictions": landed.predictions,
            **landed.schema.summary(),
            "warnings": list(dataset.warnings),
        }
        Job.objects.filter(pk=job.pk).update(result=result)
    return result
