"""The size of an image kept by reference (an http(s) address, or an object in a storage
connection): learning it for a task imported without it, and fitting the shapes saved before it
was known.

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
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from defectlab.errors import DefectLabError
from defectlab.geometry import Shape, ShapeError, shapes_from_json
from defectlab.images import image_size
from defectlab.labeling import queues
from defectlab.labeling.models import Annotation, AnnotationVersion, Task
from defectlab.labeling.tasks import index_labels
from defectlab.media.references import ImageRef
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.services import record

log = logging.getLogger(__name__)

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
    ref = ImageRef.parse(task.image)
    if ref is None or ref.stored:
        return None  # uploads always have a size; other schemes cannot be fetched
    return ref.size(task.organization_id, timeout=timeout)


def note_size(task: Task, size: tuple[int, int]) -> None:
    """Store the size learned from ``task``'s image, if it had none, and fit the shapes saved
    before it was known (see the module docstring). ``task`` gets the stored size."""
    width, height = size
    with transaction.atomic():
        stored = Task.objects.filter(
            Q(width__isnull=True) | Q(height__isnull=True), pk=task.pk
        ).update(width=width, height=height)
        if stored:
            task.width, task.height = width, height
            _fit_annotation(task, width, height)
    if stored:
        task.width, task.height = width, height
    else:  # someone else learned it first
        task.width, task.height = Task.objects.values_list("width", "height").get(pk=task.pk)


def replace_size(task_id: int, size: tuple[int, int]) -> None:
    """The task's image was replaced by one of this size (a storage sync saw the object change):
    store the size and, under the task's lock, count its shapes' size bins against it again.
    The shapes themselves are left as drawn (their versions are the record)."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task_id)
        if not size_known(task):  # learned now: the shapes are fitted to it
            note_size(task, size)
            return
        if (task.width, task.height) == size:
            return
        Task.objects.filter(pk=task_id).update(width=size[0], height=size[1])
        task.width, task.height = size
        shapes = Annotation.objects.filter(task_id=task_id).values_list("shapes", flat=True)
        index_labels(task, shapes.first() or [])


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
        index_labels(task, annotation.shapes)  # the shapes' sizes are known now
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
    index_labels(task, shapes)
    # The shapes changed: so did their disagreement with the prediction (the task row is locked
    # by the caller's update of its size).
    queues.refresh([task.pk], lock=False)

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
