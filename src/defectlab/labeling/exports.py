"""Exporting a project as a dataset, as a job: tasks become `datasets.DatasetItem`s one chunk at
a time, the chosen format adapter streams them into a zip, and the zip lands in storage under a
key fixed by the job's id — so a second run (after a crash) replaces the file, never adds one.
A run killed mid-way leaves at most one unfinished partial file, which the next export of the
organization removes (see `_write_archive`).

Options (the job's params): ``format`` (see ``datasets.FORMATS``), ``only_approved``,
``include_predictions``, ``include_images`` (default true) and ``split`` — ratios such as
``{"train": 0.8, "val": 0.2}`` with a ``seed``; each task's split is drawn from the seed and its
own id, so it is the same in every run and does not depend on which tasks are exported.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.datasets import (
    FORMATS,
    SPLITS,
    DatasetHeader,
    DatasetItem,
    DatasetLabel,
    ExportStats,
    export,
)
from defectlab.errors import Invalid
from defectlab.geometry import Shape, shapes_from_json
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Annotation, Prediction, Project, Task, TaskStatus
from defectlab.labeling.referenced import ExportFetcher, MissingImage, size_known
from defectlab.labeling.services import is_stored
from defectlab.media.storage import LocalStorage, Storage, check_key, default_storage
from defectlab.tenancy.models import User

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: partial files of killed runs are not swept
    fcntl = None  # type: ignore[assignment]

KIND = "export"
CHUNK = 500
PARTIAL = ".partial"
WARNINGS_KEPT = 200  # images left out that the job's result lists (it counts them all)


def clean_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The export options a person asked for, checked; Invalid names the one that is wrong."""
    format_name = options.get("format")
    if format_name not in FORMATS:
        raise Invalid(_("Choose an export format: %(formats)s.") % {"formats": ", ".join(FORMATS)})
    split = options.get("split") or {}
    if not isinstance(split, Mapping) or any(
        name not in SPLITS or not isinstance(ratio, int | float) or ratio < 0
        for name, ratio in split.items()
    ):
        raise Invalid(_("The split gives each of train, val, test a ratio of zero or more."))
    if split and sum(split.values()) <= 0:
        raise Invalid(_("The split ratios add up to nothing."))
    seed = options.get("seed", 0)
    if not isinstance(seed, int):
        raise Invalid(_("The seed must be a whole number."))
    return {
        "format": format_name,
        "only_approved": bool(options.get("only_approved", False)),
        "include_predictions": bool(options.get("include_predictions", False)),
        "include_images": bool(options.get("include_images", True)),
        "to_storage": bool(options.get("to_storage", False)),
        "split": {name: float(ratio) for name, ratio in split.items()},
        "seed": seed,
    }


def start_export(project: Project, options: Mapping[str, Any], user: User | None) -> Job:
    params = clean_options(options)
    if params["to_storage"]:
        from defectlab.media.connections import targets_of

        if not targets_of(project.pk):
            raise Invalid(_("This project has no target storage to export to."))
    return start_job(project.organization, KIND, params=params, user=user, project=project)


def split_of(task_id: int, ratios: Mapping[str, float], seed: int) -> str | None:
    """The split a task falls in: a stable draw from (seed, task id), cut by the ratios."""
    if not ratios:
        return None
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64 * sum(ratios.values())
    for name in SPLITS:
        draw -= ratios.get(name, 0.0)
        if draw < 0:
            return name
    return next(name for name in reversed(SPLITS) if ratios.get(name))


def export_key(job: Job) -> str:
    return f"org/{job.organization_id}/exports/job-{job.pk}.zip"


def download_name(job: Job) -> str:
    project = job.project.name if job.project else "dataset"
    safe = re.sub(r"[^\w.-]+", "-", project, flags=re.UNICODE).strip("-") or "dataset"
    return f"{safe}-{job.params.get('format', 'export')}-{job.pk}.zip"


def run_export(job: Job, progress: Progress) -> dict[str, Any]:
    project = Project.objects.get(pk=job.project_id or 0)
    options = clean_options(job.params)
    tasks = Task.objects.filter(project=project)
    if options["only_approved"]:
        tasks = tasks.filter(status=TaskStatus.APPROVED)
    progress.total(tasks.count())
    progress.at(0)
    header = DatasetHeader(
        labels=[
            DatasetLabel(label.pk, label.name, label.color)
            for label in project.labels.order_by("order", "id")
        ],
        tags=[tag["name"] if isinstance(tag, dict) else str(tag) for tag in project.tags],
        name=project.name,
    )
    storage = default_storage()
    missing: list[dict[str, Any]] = []

    def left_out(task: Task, reason: str) -> None:
        # An image kept by reference that could not be had: the task is left out whole.
        missing.append({"task": task.pk, "file_name": task.file_name, "reason": reason})
        progress.step(failed=1)

    def write(out: IO[bytes]) -> ExportStats:
        return export(
            options["format"],
            header,
            _items(tasks, options, storage, left_out),
            out,
            include_images=options["include_images"],
            on_item=lambda _count: progress.step(),
        )

    stats = _write_archive(storage, export_key(job), write)
    copies: list[dict[str, Any]] = []
    if options["to_storage"]:
        # The project's target storages get the same archive (one upload each, overwriting,
        # so a rerun after a crash leaves one copy).
        from defectlab.media.sync import upload_export

        with storage.open(export_key(job)) as archive:
            copies = upload_export(project, archive, download_name(job))
    return {
        "key": export_key(job),
        "copies": copies,
        "file_name": download_name(job),
        "format": options["format"],
        "items": stats.items,
        "images": stats.images,
        "bytes": stats.bytes,
        "skipped_shapes": stats.skipped_shapes,
        "missing": len(missing),
        "warnings": missing[:WARNINGS_KEPT],
    }


def _write_archive(
    storage: Storage, key: str, write: Callable[[IO[bytes]], ExportStats]
) -> ExportStats:
    """Write the archive to `key` so that storage only ever holds a finished one.

    On local storage the zip is written straight into a partial file next to its key and renamed
    over it when complete (one write, no copy). The writer holds a lock on its partial file; a
    worker killed mid-export leaves its partial behind unlocked, and the next export in the
    organization deletes it (`_sweep`), so at most one per killed run exists, and only until
    then. Elsewhere (S3) the zip is spooled to an anonymous temporary file, which the system
    reclaims even after a kill, and uploaded in parts (S3 shows an object only once complete).
    """
    if isinstance(storage, LocalStorage):
        return _write_local(storage.root.joinpath(*check_key(key).parts), write)
    with tempfile.SpooledTemporaryFile(
        max_size=16 * 1024 * 1024, dir=str(settings.DATA_DIR)
    ) as out:
        stats = write(out)
        out.seek(0)
        storage.save_stream(key, out)
    return stats


def _write_local(target: Path, write: Callable[[IO[bytes]], ExportStats]) -> ExportStats:
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep(target.parent)
    while True:
        handle, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=PARTIAL
        )
        _lock(handle)
        # A sweep between mkstemp and the lock may have taken this file: then make another.
        if _same_file(handle, name):
            break
        os.close(handle)
    partial = Path(name)
    try:
        with os.fdopen(handle, "w+b") as out:
            stats = write(out)
            out.flush()
            os.fsync(out.fileno())
            os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return stats


def _same_file(handle: int, name: str) -> bool:
    try:
        return os.stat(name).st_ino == os.fstat(handle).st_ino
    except FileNotFoundError:
        return False


def _lock(handle: int, *, wait: bool = True) -> bool:
    """An exclusive lock on an open file, held until it is closed (or its process dies)."""
    if fcntl is None:
        return not wait  # no locks on this system: never sweep, never wait
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _sweep(folder: Path) -> None:
    """Delete the partial archives of exports whose writer is gone (it no longer holds the lock)."""
    for path in folder.glob(f".*{PARTIAL}"):
        try:
            handle = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if fcntl is not None and _lock(handle, wait=False) and _same_file(handle, str(path)):
                path.unlink(missing_ok=True)
        finally:
            os.close(handle)


def _items(
    tasks: Any,
    options: Mapping[str, Any],
    storage: Any,
    left_out: Callable[[Task, str], None],
) -> Iterator[DatasetItem]:
    """The project's tasks as dataset items, read CHUNK at a time in id order. A task whose
    image is kept by reference and cannot be fetched (or whose size cannot be learned) is
    not yielded but handed to ``left_out`` with the reason."""
    after = 0
    used_names: set[str] = set()
    fetcher = ExportFetcher()
    while True:
        chunk = list(tasks.filter(id__gt=after).order_by("id")[:CHUNK])
        if not chunk:
            return
        after = chunk[-1].pk
        ids = [task.pk for task in chunk]
        annotations = {a.task_id: a for a in Annotation.objects.filter(task_id__in=ids)}
        predictions: dict[int, list[Shape]] = {}
        if options["include_predictions"]:
            for prediction in Prediction.objects.filter(task_id__in=ids).order_by("task_id", "id"):
                predictions.setdefault(prediction.task_id, []).extend(
                    shapes_from_json(prediction.shapes)
                )
        for task in chunk:
            sized = size_known(task)
            try:
                image = _opener(task, storage, fetcher, options["include_images"])
            except MissingImage as missing:
                left_out(task, missing.reason)
                continue
            annotation = annotations.get(task.pk)
            if not sized and annotation is not None:  # shapes were fitted to the learned size
                annotation = Annotation.objects.filter(task_id=task.pk).first()
            yield DatasetItem(
                key=str(task.pk),
                file_name=_unique_name(task, used_names),
                width=task.width or 0,
                height=task.height or 0,
                shapes=shapes_from_json(annotation.shapes) if annotation else [],
                tags=list(annotation.tags) if annotation else [],
                split=split_of(task.pk, options["split"], options["seed"]),
                image=image,
                predictions=predictions.get(task.pk, []),
                image_ref=None if is_stored(task) else task.image,
            )


def _unique_name(task: Task, used: set[str]) -> str:
    """The task's file name, made unique in the archive (two uploads may share a name)."""
    name = re.sub(r"[\\/\x00-\x1f]+", "_", task.file_name).strip(" .") or f"task-{task.pk}"
    if name in used:
        stem, dot, suffix = name.rpartition(".")
        name = f"{stem}-{task.pk}.{suffix}" if dot else f"{name}-{task.pk}"
    used.add(name)
    return name


def _opener(
    task: Task, storage: Any, fetcher: ExportFetcher, include_image: bool
) -> Callable[[], IO[bytes]] | None:
    """Opens the task's image when the writer gets to it. A stored image is read from storage
    then; one kept by reference (a URL, through the guarded fetcher under the organization's
    allowlist, or a storage connection) is fetched now, with its size if unknown — MissingImage
    when it cannot be (see labeling.referenced)."""
    key = task.image
    if is_stored(task):
        return lambda: storage.open(key)
    return fetcher.prepare(task, include_image=include_image)
