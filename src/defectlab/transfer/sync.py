"""Moving data between projects and their storage connections, as jobs.

Syncing a source (``storage_sync``): the bucket is listed under the prefix in key order, image
objects (by suffix: ``images.IMAGE_SUFFIXES``; empty objects and keys too long for a
task are skipped) are taken a page at a time, and each page is compared with the connection's
``SyncedObject`` rows in one query. A new object gets a task (``storage://<id>/<key>``, width and
height read from its first 64 KB when they are there — eight reads at a time — else left empty
until its thumbnail is made), created in the same transaction as its ``SyncedObject`` row and
the project's counter: a sync killed at any point leaves each object either synced with exactly
one task or not synced at all, and running it again (it starts over; known keys cost one query a
page) finishes the work. An object whose etag changed keeps its task (and its annotations): its
row and the task's size and dimensions are updated, its cached thumbnail dropped, and it counts
as ``changed``. Objects gone from the bucket are counted as ``missing``; their tasks stay. A
task deleted in DefectLab stays deleted: its object is still known, so no sync brings it back.

Writing to a target (``storage_write``): after a submit commits, one job per target connection
writes ``<prefix>annotations/<task id>.json`` — the submitted version's shapes (image pixels,
with label names), tags, version, author, image and time. The job writes exactly the version
that was submitted, and leaves a newer version already in the bucket alone, so jobs finishing
out of order never roll an annotation back; running one twice writes the same bytes. A failure
never touches the saved annotation: it is the job's error (retried with back-off by the runner)
and the connection's ``last_error``.

A sync honours cancel while the store hangs: its network calls (listing, reading headers) run
on helper threads with a job's timeouts, and the job's thread waits for them in steps of
``CANCEL_POLL`` seconds, looking at the cancel flag in between; a cancelled sync ends at once and
leaves the call it abandoned to time out on its own. A failure that needs a change of settings
(keys, bucket, permissions, TLS) fails the sync at once; every failure is kept, in plain words,
as the connection's ``last_error`` (a sync that works clears it).

``upload_export`` copies a finished export archive to every target of the project as
``<prefix>exports/<archive name>``; the name comes from the job, so a rerun replaces the file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import PurePosixPath
from typing import IO, Any, BinaryIO, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, DefectLabError, Invalid
from defectlab.images import image_size, is_image_name
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import Cancelled, Progress
from defectlab.jobs.services import start_job
from defectlab.labeling.models import AnnotationVersion, Label, Project, Task
from defectlab.labeling.sizes import replace_size
from defectlab.labeling.tasks import NewTask, add_tasks
from defectlab.media.connections import (
    open_storage,
    storage_failure,
    targets_of,
)
from defectlab.media.models import StorageConnection, StorageRole, SyncedObject
from defectlab.media.objects import thumbnail_key
from defectlab.media.references import ImageRef
from defectlab.media.s3 import ObjectChanged, S3Storage, StoredObject
from defectlab.media.storage import default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record

log = logging.getLogger(__name__)

SYNC_KIND = "storage_sync"
WRITE_KIND = "storage_write"
HEAD_BYTES = 64 * 1024
PAGE = 500  # objects compared (and keys sent in one IN list) at a time
PROBE_THREADS = 8
T = TypeVar("T")
_TASK_IMAGE_LENGTH = Task._meta.get_field("image").max_length or 1024


# ---------------------------------------------------------------------------- source sync


def start_sync(connection: StorageConnection, user: User | None, *, page_size: int = PAGE) -> Job:
    """Queue a sync of a source, in the audit trail as ``user``'s; Conflict while another one of
    it is queued or running."""
    if connection.role != StorageRole.SOURCE:
        raise Invalid(_("Only a source storage can be synced; a target receives annotations."))
    running = Job.objects.filter(
        organization_id=connection.organization_id,
        kind=SYNC_KIND,
        state__in=(JobState.QUEUED, JobState.RUNNING),
        cancel_requested=False,
        params__connection=connection.pk,
    ).first()
    if running is not None:
        raise Conflict(_("This storage is already being synced."), details={"job": running.pk})
    with transaction.atomic():
        job = start_job(
            connection.organization,
            SYNC_KIND,
            params={"connection": connection.pk, "page_size": max(1, min(page_size, 1000))},
            user=user,
            project=connection.project,
        )
        StorageConnection.objects.filter(pk=connection.pk).update(last_sync_job=job)
        record(
            None,
            AuditAction.STORAGE_SYNC_STARTED,
            organization=connection.organization_id,
            target=connection,
            actor=user,
            data={"job": job.pk},
        )
    return job


def _connection(job: Job, role: str) -> StorageConnection:
    connection = (
        StorageConnection.objects.select_related("project")
        .filter(pk=job.params.get("connection"), organization_id=job.organization_id, role=role)
        .first()
    )
    if connection is None:
        raise Invalid(_("This storage connection was deleted."), code="storage_removed")
    return connection


def run_sync(job: Job, progress: Progress) -> dict[str, Any]:
    connection = _connection(job, StorageRole.SOURCE)
    try:
        result = _sync(job, connection, progress)
    except DefectLabError as failure:
        _record(connection, str(failure))
        raise
    StorageConnection.objects.filter(pk=connection.pk).update(
        last_sync_at=timezone.now(), last_sync_job=job, last_error="", last_error_at=None
    )
    return result


CANCEL_POLL = 1.0  # seconds a sync's thread waits on the network before looking at cancel


class _Watch:
    """Waits for a sync's network calls in steps, noticing a cancel request in between."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.io = ThreadPoolExecutor(1, thread_name_prefix="defectlab-sync-io")
        self.probes = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="defectlab-probe")

    def wait(self, future: Future[T]) -> T:
        while True:
            try:
                return future.result(timeout=CANCEL_POLL)
            except FutureTimeout:
                if Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
                    raise Cancelled from None

    def next(self, items: Iterator[T]) -> T | None:
        return self.wait(self.io.submit(next, items, None))

    def close(self) -> None:
        # Never wait here for a call that hangs: it ends by its own timeout.
        self.io.shutdown(wait=False, cancel_futures=True)
        self.probes.shutdown(wait=False, cancel_futures=True)


def _sync(job: Job, connection: StorageConnection, progress: Progress) -> dict[str, Any]:
    page_size = int(job.params.get("page_size") or PAGE)
    progress.at(0)  # every run lists from the start; known objects cost one query a page
    counts: Counter[str] = Counter()
    storage = open_storage(connection)  # Refused names the rule; the job fails, no retry
    watch = _Watch(job)
    try:
        for page in _pages(connection, storage, page_size, counts, watch):
            _sync_page(connection, storage, page, watch, counts)
            progress.step(len(page))  # notices a cancel, every half second or so
    except (BotoCoreError, ClientError) as error:
        raise storage_failure(error, storage) from error
    finally:
        watch.close()
        storage.close()
    seen = counts["new"] + counts["changed"] + counts["unchanged"]
    missing = SyncedObject.objects.filter(connection=connection).count() - seen
    progress.total(progress.done)
    return {
        "listed": seen,
        "new": counts["new"],
        "changed": counts["changed"],
        "unchanged": counts["unchanged"],
        "skipped": counts["skipped"],
        "missing": max(0, missing),
    }


def _pages(
    connection: StorageConnection,
    storage: S3Storage,
    page_size: int,
    counts: Counter[str],
    watch: _Watch,
) -> Iterator[list[StoredObject]]:
    page: list[StoredObject] = []
    listed = storage.iter_keys(page_size=page_size)
    while (item := watch.next(listed)) is not None:
        if (
            not is_image_name(item.key)
            or item.size == 0
            or len(str(ImageRef.in_storage(connection.pk, item.key))) > _TASK_IMAGE_LENGTH
        ):
            counts["skipped"] += 1
            continue
        page.append(item)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


def _sync_page(
    connection: StorageConnection,
    storage: S3Storage,
    page: list[StoredObject],
    watch: _Watch,
    counts: Counter[str],
) -> None:
    for attempt in range(3):
        known: dict[str, tuple[str, int, int | None]] = {
            key: (etag, row_id, task_id)
            for key, etag, row_id, task_id in SyncedObject.objects.filter(
                connection=connection, key__in=[item.key for item in page]
            ).values_list("key", "etag", "id", "task_id")
        }
        new = [item for item in page if item.key not in known]
        changed = [item for item in page if item.key in known and known[item.key][0] != item.etag]
        # Read the headers before the transaction: no database lock is held across the network.
        probed = new + changed
        futures = [watch.probes.submit(_probe, storage, item) for item in probed]
        sizes = {item.key: watch.wait(future) for item, future in zip(probed, futures, strict=True)}
        try:
            if new or changed:
                with transaction.atomic():
                    _create_tasks(connection, new, sizes)
                    _update_changed(changed, known, sizes)
        except IntegrityError:
            if attempt == 2:
                raise
            continue  # another sync of this connection got there first: compare again
        counts["new"] += len(new)
        counts["changed"] += len(changed)
        counts["unchanged"] += len(page) - len(new) - len(changed)
        return


def _probe(storage: S3Storage, item: StoredObject) -> tuple[int, int] | None:
    try:
        end = min(item.size, HEAD_BYTES) - 1
        with storage.open_range(item.key, 0, end, if_match=item.etag) as file:
            head = file.read()
    except (BotoCoreError, ClientError, OSError, ObjectChanged):
        return None  # no dimensions now; the thumbnail fills them in
    return image_size(head)


def _create_tasks(
    connection: StorageConnection,
    new: list[StoredObject],
    sizes: dict[str, tuple[int, int] | None],
) -> None:
    if not new:
        return
    tasks = add_tasks(
        connection.project,
        [
            NewTask(
                image=str(ImageRef.in_storage(connection.pk, item.key)),
                file_name=PurePosixPath(item.key).name,
                width=(sizes.get(item.key) or (None, None))[0],
                height=(sizes.get(item.key) or (None, None))[1],
                size_bytes=item.size,
            )
            for item in new
        ],
    )
    SyncedObject.objects.bulk_create(
        [
            SyncedObject(
                organization_id=connection.organization_id,
                connection=connection,
                key=item.key,
                etag=item.etag[:128],
                size=item.size,
                task=task,
            )
            for item, task in zip(new, tasks, strict=True)
        ],
        batch_size=PAGE,
    )


def _update_changed(
    changed: list[StoredObject],
    known: dict[str, tuple[str, int, int | None]],
    sizes: dict[str, tuple[int, int] | None],
) -> None:
    if not changed:
        return
    SyncedObject.objects.bulk_update(
        [
            SyncedObject(pk=known[item.key][1], etag=item.etag[:128], size=item.size)
            for item in changed
        ],
        ["etag", "size"],
    )
    stale: list[int] = []
    for item in changed:  # rare: one update each
        task_id = known[item.key][2]
        if task_id is None:
            continue
        Task.objects.filter(pk=task_id).update(size_bytes=item.size)
        size = sizes.get(item.key)
        if size:  # the shapes' size bins are counted against the new size
            replace_size(task_id, size)
        stale.append(task_id)

    def drop_thumbnails() -> None:
        cache = default_storage()
        for task_id in stale:
            cache.delete(thumbnail_key(task_id))

    transaction.on_commit(drop_thumbnails)


# ---------------------------------------------------------------------------- target writes


def write_to_targets(
    sender: object, *, task_id: int, project_id: int, version: int, user_id: int, **_extra: Any
) -> None:
    """Receives ``labeling.signals.annotation_submitted`` (sent once a submit has committed):
    queue a write of that version to every target of the project. Never raises: the annotation
    is saved whatever happens here."""
    try:
        targets = StorageConnection.objects.filter(
            project_id=project_id, role=StorageRole.TARGET
        ).select_related("organization", "project")
        for target in targets:
            start_job(
                target.organization,
                WRITE_KIND,
                params={"connection": target.pk, "task": task_id, "version": version},
                user=User.objects.filter(pk=user_id).first(),
                project=target.project,
            )
    except Exception:
        log.exception("could not queue the target storage writes of task %s", task_id)


def annotation_key(task_id: int) -> str:
    return f"annotations/{task_id}.json"


def annotation_document(task: Task, version: AnnotationVersion) -> dict[str, Any]:
    """What a target receives for one submitted annotation (coordinates in image pixels)."""
    labels = dict(Label.objects.filter(project_id=task.project_id).values_list("id", "name"))
    image = task.image
    ref = ImageRef.parse(image)
    if ref is not None and ref.kind == "storage":
        try:
            source = ref.connection(task.organization_id)
            image = f"s3://{source.bucket}/{source.prefix}{ref.location}"
        except DefectLabError:
            pass  # the source was removed: keep the reference as it is
    return {
        "task": task.pk,
        "project": task.project_id,
        "file_name": task.file_name,
        "image": image,
        "width": task.width,
        "height": task.height,
        "version": version.version,
        "author": version.author.email if version.author else None,
        "submitted_at": version.created_at.isoformat(),
        "tags": list(version.tags),
        "shapes": [
            shape | {"label_name": labels.get(shape.get("label"))} for shape in version.shapes
        ],
    }


def run_write(job: Job, progress: Progress) -> dict[str, Any]:
    connection = _connection(job, StorageRole.TARGET)
    number = int(job.params.get("version") or 0)
    version = (
        AnnotationVersion.objects.select_related("author", "annotation__task")
        .filter(
            annotation__task_id=job.params.get("task"),
            annotation__task__project_id=connection.project_id,
            version=number,
        )
        .first()
    )
    if version is None:
        return {"skipped": "deleted"}  # the task (or its annotation) is gone since
    task = version.annotation.task
    data = json.dumps(annotation_document(task, version), ensure_ascii=False, indent=1).encode()
    key = annotation_key(task.pk)
    with _target(connection) as storage:
        if _newer_in_bucket(storage, key, task.pk, number):
            return {"key": storage.config.prefix + key, "skipped": "newer"}
        storage.save(key, data)
        progress.step()
        return {"key": storage.config.prefix + key, "version": number}


def _newer_in_bucket(storage: S3Storage, key: str, task_id: int, version: int) -> bool:
    try:
        existing = json.loads(storage.read(key))
    except (FileNotFoundError, ValueError):
        return False  # not there, not ours, or damaged: write ours
    except ClientError:
        return False  # a write-only key may not read: writing is what was asked
    return (
        isinstance(existing, dict)
        and existing.get("task") == task_id
        and isinstance(existing.get("version"), int)
        and existing["version"] > version
    )


class _target:
    """A target's storage for one write; failures become the job's error (retried) and the
    connection's ``last_error``; success clears it."""

    def __init__(self, connection: StorageConnection) -> None:
        self.connection = connection
        self.storage: S3Storage | None = None

    def __enter__(self) -> S3Storage:
        try:
            self.storage = open_storage(self.connection)
        except DefectLabError as refusal:
            _record(self.connection, refusal.message)
            raise
        return self.storage

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        assert self.storage is not None
        self.storage.close()
        if isinstance(error, BotoCoreError | ClientError):
            failure = storage_failure(error, self.storage)
            _record(self.connection, str(failure))
            raise failure from error
        if error is None:
            _record(self.connection, "")


def _record(connection: StorageConnection, message: str) -> None:
    StorageConnection.objects.filter(pk=connection.pk).update(
        last_error=message[:2000], last_error_at=timezone.now() if message else None
    )


def upload_export(project: Project, file: IO[bytes], name: str) -> list[dict[str, Any]]:
    """Copy a finished export archive to every target of ``project``, as
    ``<prefix>exports/<name>``."""
    targets = targets_of(project.pk)
    if not targets:
        raise Invalid(_("This project has no target storage to export to."))
    written = []
    for target in targets:
        with _target(target) as storage:
            file.seek(0)
            storage.save_stream(f"exports/{name}", cast(BinaryIO, file))
            written.append(
                {
                    "connection": target.pk,
                    "name": target.name,
                    "key": f"{storage.config.prefix}exports/{name}",
                }
            )
    return written
