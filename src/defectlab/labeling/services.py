"""Projects, their label schema and their tasks: creating, importing, listing, deleting.

A change a person makes (creating, changing or deleting a project or a label, assigning or
deleting tasks) takes the ``actor`` and writes its audit row here, so the API, the pages and the
command write the same row; ``actor=None`` is a change nobody in particular made.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import EllipsisType
from typing import Any
from urllib.parse import unquote

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.geometry import ShapeType
from defectlab.images import STORED_SUFFIX
from defectlab.ingest.uploads import IncomingImage
from defectlab.jobs.models import Job
from defectlab.jobs.services import start_job
from defectlab.labeling.attributes import clean_label_attributes
from defectlab.labeling.counters import add_tally, move_task, moving, tally_of
from defectlab.labeling.models import Label, Project, QueueOrder, Task, TaskLabel, TaskStatus
from defectlab.labeling.tasks import COUNTER, NewTask, add_tasks
from defectlab.media.references import ImageRef, s3_resolver
from defectlab.media.services import cached_copies, reference_thumbnails
from defectlab.media.storage import default_storage
from defectlab.params import (
    split_url,
)
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import Membership, Organization, User
from defectlab.tenancy.services import record

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_HOTKEY = re.compile(r"^[1-9a-z]$")


def _audit(
    action: AuditAction,
    actor: User | None,
    organization_id: int,
    target: Project | Label | None = None,
    **data: Any,
) -> None:
    """The audit row of a change in ``organization_id`` (``data`` its payload)."""
    record(None, action, organization=organization_id, target=target, actor=actor, data=data)


# ---------------------------------------------------------------------------- schema


def clean_shape_types(value: Any) -> list[str]:
    allowed = {shape_type.value for shape_type in ShapeType}
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item in allowed for item in value)
    ):
        raise Invalid(
            _("Shape types must be a non-empty list drawn from: %(allowed)s.")
            % {"allowed": ", ".join(sorted(allowed))},
            details={"field": "shape_types"},
        )
    return list(dict.fromkeys(value))


def clean_tags(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise Invalid(_("Tags must be a list."), details={"field": "tags"})
    tags: list[dict[str, str]] = []
    for item in value:
        tag = {"name": item} if isinstance(item, str) else item
        if (
            not isinstance(tag, dict)
            or not isinstance(tag.get("name"), str)
            or not tag["name"].strip()
        ):
            raise Invalid(_("Each tag needs a name."), details={"field": "tags"})
        color = tag.get("color", "#757575")
        if not isinstance(color, str) or not _COLOR.match(color):
            raise Invalid(_("A color must look like #1e88e5."), details={"field": "tags"})
        tags.append({"name": tag["name"].strip()[:50], "color": color})
    if len({tag["name"] for tag in tags}) != len(tags):
        raise Invalid(_("Tag names must be unique."), details={"field": "tags"})
    return tags


def check_label(
    project: Project, name: str, color: str, hotkey: str, exclude: int | None = None
) -> None:
    if not name.strip():
        raise Invalid(_("A label needs a name."), details={"field": "name"})
    if not _COLOR.match(color):
        raise Invalid(_("A color must look like #1e88e5."), details={"field": "color"})
    siblings = Label.objects.filter(project=project)
    if exclude is not None:
        siblings = siblings.exclude(pk=exclude)
    if siblings.filter(name=name.strip()).exists():
        raise Invalid(
            _("This project already has a label named %(name)s.") % {"name": name},
            details={"field": "name"},
        )
    if hotkey:
        if not _HOTKEY.match(hotkey):
            raise Invalid(
                _("A hotkey is one digit 1–9 or a lower-case letter."), details={"field": "hotkey"}
            )
        if siblings.filter(hotkey=hotkey).exists():
            raise Invalid(
                _("Another label already uses hotkey %(key)s.") % {"key": hotkey},
                details={"field": "hotkey"},
            )


@transaction.atomic
def create_project(organization: Organization, user: User, **fields: Any) -> Project:
    """A new project by ``user``, with its first ``labels`` (one audit row for all of it)."""
    labels = fields.pop("labels", [])
    fields["shape_types"] = clean_shape_types(fields.get("shape_types", ["box", "polygon"]))
    fields["tags"] = clean_tags(fields.get("tags", []))
    project = Project.objects.create(organization=organization, created_by=user, **fields)
    for order, label in enumerate(labels):
        _new_label(project, **{"order": order, **label})
    _audit(AuditAction.PROJECT_CREATED, user, organization.pk, project)
    return project


def add_label(project: Project, *, actor: User | None = None, **fields: Any) -> Label:
    label = _new_label(project, **fields)
    _audit(AuditAction.LABEL_CREATED, actor, project.organization_id, label)
    return label


# Colours a new class gets when none is chosen: distinct on the canvas and from one another, the
# first one the project does not use yet (then round again).
PALETTE = (
    "#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1",
    "#fdd835", "#6d4c41", "#d81b60", "#3949ab", "#7cb342", "#546e7a",
)  # fmt: skip


def free_color(project: Project) -> str:
    """The colour a new class of ``project`` gets when none is chosen."""
    used = {color.lower() for color in project.labels.values_list("color", flat=True)}
    free = [color for color in PALETTE if color not in used]
    return free[0] if free else PALETTE[len(used) % len(PALETTE)]


def _new_label(project: Project, **fields: Any) -> Label:
    name = str(fields.get("name", "")).strip()
    color = fields.get("color") or free_color(project)
    hotkey = fields.get("hotkey", "")
    check_label(project, name, color, hotkey)
    return Label.objects.create(
        organization_id=project.organization_id,
        project=project,
        name=name,
        color=color,
        hotkey=hotkey,
        attributes=clean_label_attributes(fields.get("attributes", [])),
        order=fields.get("order", project.labels.count()),
    )


def update_label(label: Label, *, actor: User | None = None, **fields: Any) -> Label:
    name = str(fields.get("name", label.name)).strip()
    color = fields.get("color", label.color)
    hotkey = fields.get("hotkey", label.hotkey)
    check_label(label.project, name, color, hotkey, exclude=label.pk)
    label.name, label.color, label.hotkey = name, color, hotkey
    if "attributes" in fields:
        label.attributes = clean_label_attributes(fields["attributes"])
    if "order" in fields:
        label.order = int(fields["order"])
    label.save()
    _audit(AuditAction.LABEL_UPDATED, actor, label.organization_id, label)
    return label


def delete_label(label: Label, *, actor: User | None = None) -> None:
    if TaskLabel.objects.filter(label=label).exists():
        raise Invalid(_("Annotations use this label; it cannot be deleted."))
    label.delete()
    _audit(AuditAction.LABEL_DELETED, actor, label.organization_id, name=label.name)


def update_project(project: Project, *, actor: User | None = None, **fields: Any) -> Project:
    """Change a project's settings (not its labels, which have their own functions)."""
    if "shape_types" in fields:
        fields["shape_types"] = clean_shape_types(fields["shape_types"])
    if "tags" in fields:
        fields["tags"] = clean_tags(fields["tags"])
    if "name" in fields and not str(fields["name"]).strip():
        raise Invalid(_("A project needs a name."), details={"field": "name"})
    if "queue_order" in fields and fields["queue_order"] not in QueueOrder.values:
        raise Invalid(
            _("The queue order must be one of: %(orders)s.")
            % {"orders": ", ".join(QueueOrder.values)},
            details={"field": "queue_order"},
        )
    for name, value in fields.items():
        setattr(project, name, value)
    project.save(update_fields=list(fields))
    _audit(AuditAction.PROJECT_UPDATED, actor, project.organization_id, project)
    return project


PROJECT_DELETION = "project_delete"


def delete_project(project: Project, *, actor: User | None = None) -> Job:
    """Delete a project: from now on it answers 404 everywhere, and a job removes its tasks and
    their files a chunk at a time, then the project (``labeling.jobs``). The audit row keeps its
    name. The caller checks the actor's role."""
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(deleting_since=timezone.now())
        _audit(AuditAction.PROJECT_DELETED, actor, project.organization_id, name=project.name)
        return start_job(
            project.organization,
            PROJECT_DELETION,
            params={"project": project.pk, "name": project.name},
            user=actor,
            project=project,
        )


# ---------------------------------------------------------------------------- tasks in


def create_uploaded_tasks(project: Project, images: Iterable[IncomingImage]) -> list[Task]:
    """Store every image and create its task — all of them, or (on any error) none."""
    storage = default_storage()
    stored: list[str] = []
    try:
        tasks = []
        for image in images:
            key = f"org/{project.organization_id}/projects/{project.pk}/{uuid.uuid4().hex}{STORED_SUFFIX[image.info.format]}"
            storage.save(key, image.data)
            stored.append(key)
            tasks.append(
                NewTask(
                    image=key,
                    file_name=image.name,
                    width=image.info.width,
                    height=image.info.height,
                    size_bytes=len(image.data),
                )
            )
        if not tasks:
            raise Invalid(_("The upload holds no images."), code="empty")
        return add_tasks(project, tasks)
    except BaseException:
        for key in stored:
            storage.delete(key)
        raise


MAX_SIDE = 2**31 - 1  # the database's integer; no camera comes near it
# An http(s) address of plain parts (a host name or IPv4 address, a port, a path without spaces
# or controls, a query): urlsplit's scheme, netloc and path are these groups as they are.
_PLAIN_URL = re.compile(
    r"(https?)://([A-Za-z0-9.-]+(?::[0-9]{1,5})?)(/[^?#\x00-\x20\x7f]*)?(?:[?#][^\x00-\x20\x7f]*)?\Z"
)


def reference_row(s3: Callable[[str], ImageRef | None], index: int, item: Any) -> NewTask:
    """The task one checked import row describes. An ``s3://`` address becomes the
    ``storage://`` reference of the project's storage connection on its bucket (refused when
    the project has none: nothing could read it)."""
    image: Any
    entry: dict[str, Any] | None
    if isinstance(item, str):
        image, entry = item, None
    else:
        entry = item if isinstance(item, dict) else None
        image = entry.get("image") if entry is not None else None
    if not isinstance(image, str) or not image:
        where = {"row": index + 1}
        raise Invalid(_("Row %(row)s: each entry needs an “image” address.") % where, details=where)
    plain = _PLAIN_URL.match(image)
    if plain is not None and len(image) <= 1024:  # urlsplit's parts, at a fraction of its cost
        netloc, path = plain[2], plain[3] or ""
    else:
        parts = split_url(image)
        if parts.scheme not in ("http", "https", "s3") or not parts.netloc or len(image) > 1024:
            where = {"row": index + 1}
            raise Invalid(
                _("Row %(row)s: “%(image)s” is not an http(s):// or s3:// address.")
                % {**where, "image": image[:200]},
                details=where,
            )
        netloc, path = parts.netloc, parts.path
        if parts.scheme == "s3":
            ref = s3(image)
            if ref is None:
                where = {"row": index + 1}
                raise Invalid(
                    _(
                        "Row %(row)s: “%(image)s” is in no storage connection of this project: "
                        "add its bucket as a storage connection, then import it again."
                    )
                    % {**where, "image": image[:200]},
                    details=where,
                )
            image = str(ref)
    if entry is None:
        return NewTask(image, unquote(path.rsplit("/", 1)[-1]) or netloc)
    name = entry.get("file_name") or unquote(path.rsplit("/", 1)[-1]) or netloc
    width, height = entry.get("width"), entry.get("height")
    if (  # the common case, checked at once
        type(width) is int
        and type(height) is int
        and 0 < width <= MAX_SIDE
        and 0 < height <= MAX_SIDE
    ):
        return NewTask(image=image, file_name=str(name), width=width, height=height)
    for value in (width, height):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            where = {"row": index + 1}
            raise Invalid(
                _("Row %(row)s: width and height must be whole numbers above zero.") % where,
                details=where,
            )
        if value is not None and value > MAX_SIDE:
            where = {"row": index + 1}
            raise Invalid(
                _("Row %(row)s: an image is at most %(max)s pixels wide or high.")
                % {**where, "max": MAX_SIDE},
                details=where,
            )
    return NewTask(image=image, file_name=str(name), width=width, height=height)


def import_references(project: Project, items: Sequence[Any]) -> int:
    """Tasks for images addressed by URL, checked row by row; one bad row imports nothing."""
    if not isinstance(items, list) or not items:
        raise Invalid(_("Send a non-empty JSON list of image addresses."))
    s3 = s3_resolver(project.pk)
    rows = [reference_row(s3, index, item) for index, item in enumerate(items)]
    # No tasks back: one executemany, much faster than bulk_create for a large import.
    add_tasks(project, rows, returning=False)
    return len(rows)


# ---------------------------------------------------------------------------- tasks


def assign_tasks(
    project: Project,
    task_ids: Sequence[int],
    assignee: int | None,
    *,
    actor: User | None = None,
) -> int:
    """Give tasks of ``project`` to a member (or to nobody); returns how many of ``task_ids`` are
    the project's (now the member's)."""
    if (
        assignee is not None
        and not Membership.objects.filter(
            organization_id=project.organization_id, user_id=assignee
        ).exists()
    ):
        raise Invalid(_("The assignee must be a member of this organization."))
    with transaction.atomic():
        # Locked in id order (as everywhere) while their part of the tally moves to the
        # assignee's slices: a save or a verdict landing meanwhile waits.
        found = (
            Task.objects.select_for_update()
            .filter(project=project, id__in=list(task_ids))
            .order_by("id")
            .values_list("id", "assignee_id")
        )
        rows = list(found)
        moved = [task_id for task_id, before in rows if before != assignee]
        with moving(project.pk, moved):
            Task.objects.filter(id__in=moved).update(assignee_id=assignee)
        updated = len(rows)  # the tasks asked for that are the project's, theirs already or not
    data = {"count": updated, "assignee": assignee}
    _audit(AuditAction.TASKS_ASSIGNED, actor, project.organization_id, project, **data)
    return updated


def unassign_user(user_id: int) -> None:
    """Before a person's account is deleted: their tasks to nobody, each project's by
    ``assign_tasks`` (audited, the tally moved with them) — the database would otherwise null
    the assignee behind the tally's back."""
    projects = Task.objects.filter(assignee_id=user_id).values_list("project_id", flat=True)
    for project in Project.all_objects.filter(pk__in=projects.distinct()).order_by("pk"):
        ids = Task.objects.filter(project=project, assignee_id=user_id).values_list("pk", flat=True)
        assign_tasks(project, list(ids), None)


def set_status(
    task: Task,
    status: str,
    *,
    tally: bool = True,
    assignee: int | EllipsisType | None = ...,
) -> list[int]:
    """Move a task to ``status`` (and to ``assignee``, when given: it is then set on ``task``),
    keeping the project's stored counters true, and its part of the tally unless ``tally=False``
    (the caller moved it); the labels of its label index when the tally was moved
    (``counters.move_task``)."""
    if task.status == status:
        return []
    was = (str(task.status), task.assignee_id)
    if not isinstance(assignee, EllipsisType):
        task.assignee_id = assignee
    Project.objects.filter(pk=task.project_id).update(
        **{
            COUNTER[TaskStatus(task.status)]: F(COUNTER[TaskStatus(task.status)]) - 1,
            COUNTER[TaskStatus(status)]: F(COUNTER[TaskStatus(status)]) + 1,
        }
    )
    labels = move_task(task, status, task.assignee_id, was=was) if tally else []
    task.status = status
    return labels


def delete_task(task: Task, *, actor: User | None = None) -> None:
    """Delete one task, its image and cached copies (in the audit trail by id and file name)."""
    delete_tasks(task.project, [task.pk])
    gone: dict[str, Any] = {"task": task.pk, "file_name": task.file_name}
    _audit(AuditAction.TASK_DELETED, actor, task.organization_id, **gone)


def delete_tasks(project: Project, task_ids: Sequence[int]) -> int:
    """Delete tasks of ``project`` with their files, keeping its counters true. No audit row:
    it is the step :func:`delete_task` and :func:`delete_project` share, each writing its own."""
    with transaction.atomic():
        # Locked (in id order, as everywhere) before their statuses are read: a submit or a
        # verdict landing meanwhile must not move a counter this then moves again from the
        # status it had before.
        tasks = list(
            Task.objects.select_for_update()
            .filter(project=project, id__in=task_ids)
            .only("id", "image", "status")
            .order_by("id")
        )
        for status, counter in COUNTER.items():
            gone = sum(1 for task in tasks if task.status == status)
            if gone:
                Project.objects.filter(pk=project.pk).update(**{counter: F(counter) - gone})
        counted = tally_of(project.pk, [task.pk for task in tasks])
        add_tally(project.pk, {key: -number for key, number in counted.items()})
        Task.objects.filter(id__in=[task.pk for task in tasks]).delete()
        # The image and its cached copies; for a task kept by reference, its cached thumbnail.
        paths = [path for task in tasks for path in _files_of(task)]
        transaction.on_commit(lambda: _delete_files(paths))
    return len(tasks)


def _files_of(task: Task) -> tuple[str, ...]:
    """What storage holds for ``task``: its image and cached copies, or for an image kept by
    reference, its cached thumbnails."""
    ref = ImageRef.parse(task.image)
    if ref is not None and ref.stored:
        return (ref.location, *cached_copies(ref.location))
    return reference_thumbnails(task.pk)


def _delete_files(paths: list[str]) -> None:
    storage = default_storage()
    for path in paths:
        storage.delete(path)


def is_viewable(task: Task) -> bool:
    """True when browsers can be given the task's image: it is stored, it is an http(s)
    reference the media view fetches through the guarded fetcher, or it lives in one of the
    organization's storage connections (``media.references``)."""
    return ImageRef.parse(task.image) is not None


def recount(project: Project) -> None:
    """Recompute the stored counters from the tasks (a repair tool; normal paths keep them)."""
    counts = {counter: 0 for counter in COUNTER.values()}
    for status, number in (
        Task.objects.filter(project=project).values_list("status").annotate(n=Count("id"))
    ):
        counts[COUNTER[TaskStatus(status)]] = number
    Project.objects.filter(pk=project.pk).update(**counts)
