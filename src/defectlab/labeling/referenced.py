"""Images kept by reference (an http(s) address, or an object in a storage connection), seen
from the labeling side: learning the size of one imported without it, checking the shapes saved
before it was known, and fetching images for an export with retries.

Sizes. A task imported as ``{"image": url}`` has no width and height. They are learned the first
time the image passes through us — imported by copy (the upload check reads them), first shown
(the media view), an annotation or prediction saved on it, an export — from the image's header
only where we fetch for the size alone (an HTTP Range request for the first bytes), and stored
on the task. From then on shapes are checked against the image as for uploads.

Shapes saved while the size was unknown are checked once it is known (``note_size``): a shape
reaching past the border is clipped to the image; a shape that is no shape on this image (it
lies entirely outside it, or has no area) is taken out. Either change becomes a new annotation
version without an author — the version before keeps the shapes as they were drawn, so nothing
is lost — and an audit event ``annotation.fitted`` names the task, the new version and the
shapes clipped and taken out.

Exports (``ExportFetcher``). Each image is fetched before its task is written, so a task whose
image cannot be had is left out whole (no label file without its image). A failure that may pass
(no connection, a timeout, a server error) is tried again after a short, growing pause, up to
``DEFECTLAB_JOB_MAX_ATTEMPTS`` attempts in all; a refusal by the URL policy, or a 404, is not.
Once a host that has not answered in this export failed every attempt, its next images get one
attempt each, so an export of many images from a host that is down does not wait for each of
them in turn.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import IO, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError
from defectlab.geometry import Shape, ShapeError, shapes_from_json
from defectlab.images import image_size
from defectlab.labeling.models import Annotation, AnnotationVersion, Task
from defectlab.media.services import STORAGE_REFERENCE

log = logging.getLogger(__name__)

T = TypeVar("T")
ImageOpener = Callable[[], IO[bytes]]

RETRY_PAUSE = 0.5  # seconds before the second attempt; doubled each time
MAX_PAUSE = 4.0
# Saving an annotation waits at most this long (or DEFECTLAB_FETCH_TIMEOUT if shorter) to learn
# the size; a header is small, and an annotator should not wait on a host that is down.
SAVE_TIMEOUT = 5.0


def size_known(task: Task) -> bool:
    return bool(task.width and task.height)


# ---------------------------------------------------------------------------- sizes


def learn_size(task: Task, *, timeout: float | None = None) -> bool:
    """Learn the size of ``task``'s image if it is unknown, reading its header (one attempt).
    True when the task has a size now (``task`` is updated); False when the image cannot be
    fetched or read — the caller goes on without it."""
    if size_known(task):
        return True
    try:
        size = _read_size(task, timeout)
    except (DefectLabError, OSError) as error:
        log.info("size of task %s not learned: %s", task.pk, error)
        return False
    if size is None:
        return False
    note_size(task, size)
    return size_known(task)


def learn_size_from(task: Task, data: bytes) -> None:
    """Learn the size of ``task``'s image, if unknown, from bytes fetched anyway (to show it)."""
    if not size_known(task):
        size = image_size(data)
        if size is not None:
            note_size(task, size)


def _read_size(task: Task, timeout: float | None = None) -> tuple[int, int] | None:
    if task.image.startswith(STORAGE_REFERENCE):
        from defectlab.media.references import reference_size

        return reference_size(task.organization_id, task.image)
    if task.image.startswith(("http://", "https://")):
        from defectlab.ingest.services import referenced_size

        return referenced_size(task.organization_id, task.image, timeout=timeout)
    return None  # uploads always have a size; other schemes cannot be fetched


def note_size(task: Task, size: tuple[int, int]) -> None:
    """Store the size learned from ``task``'s image, if it had none, and fit the shapes saved
    before it was known (see the module docstring). ``task`` gets the stored size."""
    width, height = size
    with transaction.atomic():
        stored = Task.objects.filter(
            Q(width__isnull=True) | Q(height__isnull=True), pk=task.pk
        ).update(width=width, height=height)
        if stored:
            _fit_annotation(task, width, height)
    if stored:
        task.width, task.height = width, height
    else:  # someone else learned it first
        task.width, task.height = Task.objects.values_list("width", "height").get(pk=task.pk)


def fit_shapes(
    shapes: list[Shape], width: int, height: int
) -> tuple[list[Shape], list[int], list[int]]:
    """(the shapes fitted to a ``width`` x ``height`` image, numbers of those clipped, numbers
    of those taken out); shapes are numbered from 1."""
    fitted: list[Shape] = []
    clipped: list[int] = []
    removed: list[int] = []
    for number, shape in enumerate(shapes, 1):
        try:
            shape.validate(width, height)
            fitted.append(shape)
            continue
        except ShapeError:
            pass
        try:
            inside = shape.clipped(width, height)
            inside.validate(width, height)
        except ShapeError:
            removed.append(number)
            continue
        fitted.append(inside)
        clipped.append(number)
    return fitted, clipped, removed


def _fit_annotation(task: Task, width: int, height: int) -> None:
    annotation = Annotation.objects.select_for_update().filter(task_id=task.pk).first()
    if annotation is None:
        return
    fitted, clipped, removed = fit_shapes(shapes_from_json(annotation.shapes), width, height)
    if not clipped and not removed:
        return
    shapes = [shape.to_dict() for shape in fitted]
    version = annotation.version + 1
    Annotation.objects.filter(pk=annotation.pk).update(
        version=version, shapes=shapes, author=None, updated_at=timezone.now()
    )
    AnnotationVersion.objects.create(
        organization_id=annotation.organization_id,
        annotation=annotation,
        version=version,
        shapes=shapes,
        tags=annotation.tags,
        author=None,
    )
    from defectlab.labeling.workflow import _index_labels  # the label filter's index
    from defectlab.tenancy.audit import AuditAction
    from defectlab.tenancy.services import record

    _index_labels(task, shapes)

    record(
        None,
        AuditAction.ANNOTATION_FITTED,
        organization=annotation.organization_id,
        target=task,
        data={
            "version": version,
            "width": width,
            "height": height,
            "clipped": clipped,
            "removed": removed,
        },
    )


# ---------------------------------------------------------------------------- exports


class MissingImage(Exception):
    """The image of a task kept by reference could not be had; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExportFetcher:
    """Fetches the images of one export's tasks kept by reference (see the module docstring)."""

    def __init__(self) -> None:
        self.down: set[str] = set()  # hosts (or storages) that failed every attempt
        self.up: set[str] = set()  # those that answered once: one failing image is not all

    def prepare(self, task: Task, *, include_image: bool) -> ImageOpener | None:
        """What the export needs of ``task``'s image: its size when unknown (learned and stored
        here, shapes fitted), and when ``include_image``, an opener of its bytes. Raises
        MissingImage when either cannot be had."""
        need_size = not size_known(task)
        if not include_image and not need_size:
            return None
        organization_id, image = task.organization_id, task.image
        opener: ImageOpener | None = None
        size: tuple[int, int] | None = None
        if image.startswith(STORAGE_REFERENCE):
            from defectlab.media.references import open_reference, reference_size

            if need_size:
                size = self._retrying(image, lambda: reference_size(organization_id, image))
            if include_image:
                source = self._retrying(image, lambda: open_reference(organization_id, image))
                opener = lambda: source  # noqa: E731 - opened here, read by the writer
        else:
            from defectlab.ingest.services import fetch_referenced, referenced_size

            if include_image:
                data = self._retrying(image, lambda: fetch_referenced(organization_id, image))
                size = image_size(data) if need_size else None
                opener = lambda: io.BytesIO(data)  # noqa: E731
            else:
                size = self._retrying(image, lambda: referenced_size(organization_id, image))
        if need_size:
            if size is None:
                raise MissingImage(_("Its size cannot be read: this file is no image we know."))
            note_size(task, size)
        return opener

    def _retrying(self, image: str, attempt: Callable[[], T]) -> T:
        place = _place(image)
        attempts = 1 if place in self.down else settings.JOB_MAX_ATTEMPTS
        for number in range(1, attempts + 1):
            try:
                result = attempt()
            except (DefectLabError, OSError) as error:
                if number < attempts and _may_pass(error):
                    time.sleep(min(RETRY_PAUSE * 2 ** (number - 1), MAX_PAUSE))
                    continue
                if _may_pass(error) and place not in self.up:
                    self.down.add(place)
                raise MissingImage(_reason(error)) from error
            self.up.add(place)
            self.down.discard(place)
            return result
        raise AssertionError("unreachable")  # pragma: no cover - attempts >= 1


def _place(image: str) -> str:
    if image.startswith(STORAGE_REFERENCE):
        return image[len(STORAGE_REFERENCE) :].partition("/")[0]
    return urlsplit(image).netloc.lower()


def _may_pass(error: BaseException) -> bool:
    from defectlab.ingest.services import may_pass

    if isinstance(error, OSError):  # a storage connection's read (not a missing object)
        return not isinstance(error, FileNotFoundError)
    return may_pass(error)


def _reason(error: BaseException) -> str:
    if isinstance(error, DefectLabError):
        return error.message
    if isinstance(error, FileNotFoundError):
        return _("This file is no longer in storage.")
    return str(error) or _("The image could not be read.")
