"""Exporting a project as a dataset, as a job: tasks become `datasets.DatasetItem`s one chunk at
a time, the chosen format adapter streams them into a zip, and the zip lands in storage under a
key fixed by the job's id — so a second run (after a crash) replaces the file, never adds one.
A run killed mid-way leaves at most one unfinished partial file, which the next export of the
organization removes (see `_write_archive`).

Options (the job's params): ``format`` (see ``datasets.FORMATS``), ``only_approved``,
``include_unlabeled``, ``include_predictions``, ``include_images`` (default true) and ``split`` —
ratios such as ``{"train": 0.8, "val": 0.2}`` with a ``seed``.

Which tasks (`exported_tasks`): by default those whose annotation is submitted or approved — an
approved empty image is a true negative, but an image nobody labeled would be written as an empty
label file, which trainers read as "no defect". ``only_approved`` narrows that to approved tasks,
``include_unlabeled`` widens it to every task.

Splits (`Splitter`): the tasks are ranked by a draw from (seed, task id) and cut into runs whose
sizes are the ratios' shares of the count, rounded by largest remainders (`split_counts`), so 3
tasks at 0.67 / 0.33 are 2 / 1. The same tasks and seed give the same splits in every run; a task
added or left out moves at most the tasks next to a cut.

File names (`FileNames`): a task's file name, made unique by its stem, case-insensitively — YOLO's
label files and VOC's annotations are named by the stem, so `a.jpg` and `a.png` would collide.
Every task whose stem another task of the project shares gets its id appended (`a-12.jpg`), so
the name depends on the project, not on which tasks this export selects.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import io
import itertools
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
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
from defectlab.datasets.archive import stem as name_stem
from defectlab.errors import Invalid
from defectlab.geometry import Shape, shapes_from_stored
from defectlab.jobs.models import Job
from defectlab.jobs.runner import Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import Annotation, Prediction, Project, Task, TaskStatus
from defectlab.labeling.sizes import size_known
from defectlab.media.connections import targets_of
from defectlab.media.references import ImageRef
from defectlab.media.storage import LocalStorage, Storage, check_key, default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record
from defectlab.transfer.referenced import ExportFetcher, MissingImage
from defectlab.transfer.sync import upload_export

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: partial files of killed runs are not swept
    fcntl = None  # type: ignore[assignment]

advise = getattr(os, "posix_fadvise", None)  # not on macOS or Windows: no early writeback
DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)

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
    only_approved = bool(options.get("only_approved", False))
    include_unlabeled = bool(options.get("include_unlabeled", False))
    if only_approved and include_unlabeled:
        raise Invalid(
            _("Export either only approved tasks or unlabeled tasks too, not both at once.")
        )
    return {
        "format": format_name,
        "only_approved": only_approved,
        "include_unlabeled": include_unlabeled,
        "include_predictions": bool(options.get("include_predictions", False)),
        "include_images": bool(options.get("include_images", True)),
        "to_storage": bool(options.get("to_storage", False)),
        "split": {name: float(ratio) for name, ratio in split.items()},
        "seed": seed,
    }


def start_export(project: Project, options: Mapping[str, Any], user: User | None) -> Job:
    params = clean_options(options)
    if params["to_storage"] and not targets_of(project.pk):
        raise Invalid(_("This project has no target storage to export to."))
    job = start_job(project.organization, KIND, params=params, user=user, project=project)
    record(
        None,
        AuditAction.PROJECT_EXPORT_STARTED,
        organization=project.organization_id,
        target=project,
        actor=user,
        data={"format": job.params["format"], "job": job.pk},
    )
    return job


LABELED = (TaskStatus.SUBMITTED, TaskStatus.APPROVED)


def exported_tasks(project: Project, options: Mapping[str, Any]) -> Any:
    """The tasks an export with these (cleaned) options writes; see the module's docstring."""
    tasks = Task.objects.filter(project=project)
    if options.get("only_approved"):
        return tasks.filter(status=TaskStatus.APPROVED)
    if options.get("include_unlabeled"):
        return tasks
    return tasks.filter(status__in=LABELED)


def split_counts(total: int, ratios: Mapping[str, float]) -> dict[str, int]:
    """How many of `total` tasks each split with a ratio above zero gets: its share of the total
    rounded down, and the tasks left over to the largest remainders (ties in SPLITS order). The
    counts add up to `total` and each is less than 1 away from its exact share."""
    weights = {name: Fraction(ratios[name]) for name in SPLITS if ratios.get(name, 0) > 0}
    whole = sum(weights.values())
    shares = {name: total * weight / whole for name, weight in weights.items()}
    counts = {name: int(share) for name, share in shares.items()}  # floor: shares are >= 0
    left = total - sum(counts.values())
    by_remainder = sorted(
        shares, key=lambda name: (counts[name] - shares[name], SPLITS.index(name))
    )
    for name in by_remainder[:left]:
        counts[name] += 1
    return counts


def _draw(seed: int, task_id: int) -> int:
    """A task's place in the split order: a stable draw from (seed, id), the id breaking ties."""
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") << 64 | task_id


class Splitter:
    """Assigns tasks to splits so that the split sizes are `split_counts` of the tasks given."""

    def __init__(self, task_ids: Iterable[int], ratios: Mapping[str, float], seed: int) -> None:
        self.seed = seed
        self._cuts: list[int] = []
        self._names: list[str] = []
        if not ratios:
            return
        draws = sorted(_draw(seed, task_id) for task_id in task_ids)
        counts = split_counts(len(draws), ratios)
        position = 0
        for name, count in counts.items():
            position += count
            self._names.append(name)
            # A task whose draw is below the draw at the cut belongs to this split or an earlier one.
            self._cuts.append(draws[position] if position < len(draws) else 1 << 200)

    def __call__(self, task_id: int) -> str | None:
        if not self._names:
            return None
        index = bisect.bisect_right(self._cuts, _draw(self.seed, task_id))
        return self._names[min(index, len(self._names) - 1)]


def export_key(job: Job) -> str:
    return f"org/{job.organization_id}/exports/job-{job.pk}.zip"


def download_name(job: Job) -> str:
    project = job.project.name if job.project else "dataset"
    safe = re.sub(r"[^\w.-]+", "-", project, flags=re.UNICODE).strip("-") or "dataset"
    return f"{safe}-{job.params.get('format', 'export')}-{job.pk}.zip"


def run_export(job: Job, progress: Progress) -> dict[str, Any]:
    project = Project.objects.get(pk=job.project_id or 0)
    options = clean_options(job.params)
    tasks = exported_tasks(project, options)
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

    def left_out(task_id: int, file_name: str, reason: str) -> None:
        # An image kept by reference that could not be had: the task is left out whole.
        missing.append({"task": task_id, "file_name": file_name, "reason": reason})
        progress.step(failed=1)

    def write(out: IO[bytes]) -> ExportStats:
        return export(
            options["format"],
            header,
            _items(project, tasks, options, storage, left_out),
            out,
            include_images=options["include_images"],
            on_item=lambda _count: progress.step(),
        )

    stats = _write_archive(storage, export_key(job), write)
    copies: list[dict[str, Any]] = []
    if options["to_storage"]:
        # The project's target storages get the same archive (one upload each, overwriting,
        # so a rerun after a crash leaves one copy).
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
        raw = _PartialFile(handle)
        with io.BufferedRandom(raw) as out:
            stats = write(out)
            out.flush()
            raw.join_writeback()
            # Most of the archive is on disk already (see _PartialFile); this waits for the rest
            # and the file's size, so the rename never publishes a torn archive after a power cut.
            os.fsync(out.fileno())
            os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return stats


# How much a partial archive grows between two nudges to the kernel to start writing it out,
# and how far behind the end the nudged range stops: zipfile goes back to the start of the
# member it has just written to fill in its sizes, so the last few MB may be written again.
WRITEBACK_EVERY = 256 * 1024 * 1024
WRITEBACK_LAG = 16 * 1024 * 1024


class _PartialFile(io.FileIO):
    """The partial archive's file. Every WRITEBACK_EVERY bytes written it has the kernel start
    writing what lies behind to disk, so the final fsync has only the tail left to wait for
    instead of the whole archive (on 3 GB of images that fsync took about 1 s, most of what the
    export spent beyond a plain zip copy: bench/README.md, export).

    POSIX_FADV_DONTNEED starts the writeback of a range's dirty pages without waiting for it and
    drops its pages already clean (Python has no ``sync_file_range``). The call itself can take
    0.1 s on a busy disk, so a helper thread makes it, at most one at a time, while the export
    goes on writing; it is joined before the file is synced or closed."""

    def __init__(self, handle: int) -> None:
        super().__init__(handle, "w+")
        self._since = 0
        self._started = 0  # writeback was started for [0, _started)
        self._helper: threading.Thread | None = None

    def write(self, data: Any) -> int:
        written = super().write(data)
        if written:
            self._since += written
            if self._since >= WRITEBACK_EVERY:
                self._since = 0
                self._start_writeback()
        return written

    def _start_writeback(self) -> None:
        end = self.tell() - WRITEBACK_LAG
        if end <= self._started or advise is None:
            return
        self.join_writeback()
        arguments = (self.fileno(), self._started, end - self._started, DONTNEED)
        self._started = end
        self._helper = threading.Thread(
            target=_advise, args=arguments, name="export-writeback", daemon=True
        )
        self._helper.start()

    def join_writeback(self) -> None:
        if self._helper is not None:
            self._helper.join()
            self._helper = None

    def close(self) -> None:
        self.join_writeback()
        super().close()


def _advise(fd: int, offset: int, length: int, advice: int) -> None:
    # Only a hint: a failure leaves the pages to the kernel's own writeback and the final fsync.
    with contextlib.suppress(OSError):
        advise(fd, offset, length, advice)  # type: ignore[misc]


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
    project: Project,
    tasks: Any,
    options: Mapping[str, Any],
    storage: Any,
    left_out: Callable[[int, str, str], None],
) -> Iterator[DatasetItem]:
    """The exported tasks as dataset items in id order, CHUNK at a time. A task whose
    image is kept by reference and cannot be fetched (or whose size cannot be learned) is
    not yielded but handed to ``left_out`` (id, file name, reason).

    Tasks and annotations are read as plain rows (no model instances) and their shapes with
    ``shapes_from_stored``: they were checked when they were saved. Only tasks whose image is
    kept by reference are loaded whole (one query a chunk), since learning their size writes
    to them."""
    names = FileNames(project)
    splitter = Splitter(
        tasks.values_list("id", flat=True).iterator(chunk_size=2000),
        options["split"],
        options["seed"],
    )
    fetcher = ExportFetcher()
    include_images = options["include_images"]
    # One query for every task, read CHUNK rows at a time (a server-side cursor on PostgreSQL).
    # A query per chunk (id > the last one, LIMIT CHUNK) made the database find and sort every
    # task after the last one again, chunk after chunk, where the table has no statistics yet.
    every = tasks.order_by("id").values_list(*_ROW).iterator(chunk_size=CHUNK)
    while rows := list(itertools.islice(every, CHUNK)):
        annotations, predictions = _drawn([row[0] for row in rows], options["include_predictions"])
        refs = [ImageRef.parse(row[1]) for row in rows]
        referenced = [row[0] for row, ref in zip(rows, refs, strict=True) if not _stored(ref)]
        whole = Task.objects.in_bulk(referenced) if referenced else {}
        for (task_id, image, file_name, width, height), ref in zip(rows, refs, strict=True):
            annotation = annotations.get(task_id)
            opener: Callable[[], IO[bytes]] | None
            if ref is not None and ref.stored:
                opener = functools.partial(storage.open, ref.location)
            else:
                task = whole.get(task_id)
                if task is None:  # deleted since the query began
                    continue
                sized = size_known(task)
                try:
                    opener = fetcher.prepare(task, ref, include_image=include_images)
                except MissingImage as missing:
                    left_out(task_id, file_name, missing.reason)
                    continue
                width, height = task.width, task.height
                if not sized and annotation is not None:  # shapes were fitted to the learned size
                    annotation = (
                        Annotation.objects.filter(task_id=task_id)
                        .values_list("shapes", "tags")
                        .first()
                    )
            shapes, tags = annotation if annotation is not None else ((), ())
            yield DatasetItem(
                key=str(task_id),
                file_name=names(task_id, file_name),
                width=width or 0,
                height=height or 0,
                shapes=shapes_from_stored(shapes) if shapes else [],
                tags=list(tags),
                split=splitter(task_id),
                image=opener,
                predictions=predictions.get(task_id, []),
                image_ref=None if _stored(ref) else image,
            )


_ROW = ("id", "image", "file_name", "width", "height")


def _drawn(
    ids: list[int], include_predictions: bool
) -> tuple[dict[int, tuple[Any, Any]], dict[int, list[Shape]]]:
    """The stored annotation (shapes, tags) of each of these tasks, and their predictions'
    shapes when asked for, by task id."""
    annotations: dict[int, tuple[Any, Any]] = {
        task_id: (shapes, tags)
        for task_id, shapes, tags in Annotation.objects.filter(task_id__in=ids).values_list(
            "task_id", "shapes", "tags"
        )
    }
    predictions: dict[int, list[Shape]] = {}
    if include_predictions:
        for task_id, shapes in (
            Prediction.objects.filter(task_id__in=ids)
            .order_by("task_id", "id")
            .values_list("task_id", "shapes")
        ):
            predictions.setdefault(task_id, []).extend(shapes_from_stored(shapes))
    return annotations, predictions


def _stored(ref: ImageRef | None) -> bool:
    return ref is not None and ref.stored


def _clean_name(task_id: int, file_name: str) -> str:
    return re.sub(r"[\\/\x00-\x1f]+", "_", file_name).strip(" .") or f"task-{task_id}"


def _stem_key(name: str) -> str:
    return name_stem(name).casefold()


class FileNames:
    """Archive file names for a project's tasks, unique by stem (see the module's docstring)."""

    def __init__(self, project: Project) -> None:
        stems = Counter(
            _stem_key(_clean_name(task_id, file_name))
            for task_id, file_name in Task.objects.filter(project=project)
            .values_list("id", "file_name")
            .iterator(chunk_size=2000)
        )
        self._shared = {key for key, count in stems.items() if count > 1}
        self._used: set[str] = set()

    def __call__(self, task_id: int, file_name: str) -> str:
        name = _clean_name(task_id, file_name)
        key = _stem_key(name)
        if key not in self._shared and key not in self._used:
            self._used.add(key)
            return name
        # A task added since the count, or a name like "a-12.png" that the suffix made twice.
        while key in self._shared or key in self._used:
            stem = name_stem(name)
            name = f"{stem}-{task_id}{name[len(stem) :]}"
            key = _stem_key(name)
            if key not in self._used:
                break
        self._used.add(key)
        return name
