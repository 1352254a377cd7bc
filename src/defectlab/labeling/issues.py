"""Review issues: remarks a reviewer pins to a point or a shape on a task's image, which the
annotator reads on the canvas and resolves one by one. A task cannot be approved while one is
open (labeling.workflow.review); rejecting with issues pinned is the normal way to send work
back. Every change is in the audit trail, as the person who made it."""

from __future__ import annotations

import math
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Conflict, Forbidden, Invalid
from defectlab.labeling.models import Annotation, Issue, Task, TaskStatus
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import record, require

MAX_MESSAGE = 2000


def open_issues(task: Task) -> int:
    """How many of ``task``'s issues are still open."""
    return Issue.objects.filter(task_id=task.pk, resolved_at__isnull=True).count()


def open_issue(
    task: Task,
    user: User,
    *,
    message: str,
    point: Any = None,
    shape: str | None = None,
    box: Any = None,
) -> Issue:
    """Pin a remark on ``task``: at ``point`` ([x, y] in image pixels), on the shape whose id is
    ``shape`` in the current annotation (its box is kept), or on both. Without a point, the pin
    goes at the top-left corner of the shape's box. ``box`` is taken when no shape id is given
    (a shape saved without an id). Reviewers and managers only, on a submitted task."""
    require(user, task.organization_id, Can.REVIEW)
    message = (message or "").strip()
    if not message:
        raise Invalid(_("Say what is wrong: an issue needs a comment."), code="empty_issue")
    if len(message) > MAX_MESSAGE:
        raise Invalid(
            _("An issue's comment has at most %(max)s characters.") % {"max": MAX_MESSAGE}
        )
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.status != TaskStatus.SUBMITTED:
            raise Conflict(
                _("Issues are pinned on submitted work, while it is reviewed."),
                code="not_submitted",
            )
        shape_box = _shape_box(task, shape) if shape else _box(task, box)
        if point is not None:
            x, y = _point(task, point)
        elif shape_box is not None:
            x, y = shape_box[0], shape_box[1]
        else:
            raise Invalid(_("Pin the issue on a point or on a shape."), code="no_position")
        issue = Issue.objects.create(
            organization_id=task.organization_id,
            task=task,
            author=user,
            x=x,
            y=y,
            shape=shape or "",
            box=shape_box,
            message=message,
        )
        record(
            None,
            AuditAction.ISSUE_OPENED,
            organization=task.organization_id,
            target=task,
            actor=user,
            data={"issue": issue.pk, "message": message},
        )
    return issue


def resolve(issue: Issue, user: User) -> Issue:
    """Mark ``issue`` fixed: by the task's annotator (assignee or submitter) or a reviewer."""
    return _settle(issue, user, resolved=True)


def reopen(issue: Issue, user: User) -> Issue:
    """Open a resolved issue again (the fix was not enough): same people as ``resolve``."""
    return _settle(issue, user, resolved=False)


def _settle(issue: Issue, user: User, *, resolved: bool) -> Issue:
    role = require(user, issue.organization_id, Can.ANNOTATE)
    with transaction.atomic():
        issue = Issue.objects.select_for_update().select_related("task").get(pk=issue.pk)
        task = issue.task
        if not allows(role, Can.REVIEW) and user.pk not in (
            task.assignee_id,
            task.submitted_by_id,
        ):
            raise Forbidden(
                _("Only the task's annotator or a reviewer can resolve its issues."),
                code="not_yours",
            )
        if task.status == TaskStatus.APPROVED:
            raise Conflict(_("This task is approved; its issues are closed."), code="approved")
        if (issue.resolved_at is not None) == resolved:
            return issue  # already so: asking twice changes nothing
        issue.resolved_at = timezone.now() if resolved else None
        issue.resolved_by = user if resolved else None
        issue.save(update_fields=["resolved_at", "resolved_by"])
        record(
            None,
            AuditAction.ISSUE_RESOLVED if resolved else AuditAction.ISSUE_REOPENED,
            organization=issue.organization_id,
            target=task,
            actor=user,
            data={"issue": issue.pk},
        )
    return issue


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(_("An issue's position is given in image pixels."), code="invalid_position")
    return float(value)


def _point(task: Task, point: Any) -> tuple[float, float]:
    if not isinstance(point, list | tuple) or len(point) != 2:
        raise Invalid(_("An issue's point is [x, y] in image pixels."), code="invalid_position")
    x, y = (_number(value) for value in point)
    _inside(task, [x, y])
    return x, y


def _box(task: Task, box: Any) -> list[float] | None:
    if box is None:
        return None
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise Invalid(_("An issue's box is [x1, y1, x2, y2] in image pixels."))
    x1, y1, x2, y2 = (_number(value) for value in box)
    corners = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    _inside(task, corners)
    return corners


def _inside(task: Task, values: list[float]) -> None:
    xs, ys = values[0::2], values[1::2]
    width, height = task.width, task.height
    if min(xs + ys) < 0 or (width and max(xs) > width) or (height and max(ys) > height):
        raise Invalid(_("The issue lies outside the image."), code="invalid_position")


def _shape_box(task: Task, shape_id: str) -> list[float]:
    """The box around the shape with id ``shape_id`` in the task's current annotation."""
    annotation = Annotation.objects.filter(task=task).first()
    for shape in annotation.shapes if annotation else []:
        if shape.get("id") == shape_id:
            xs = [float(point[0]) for point in shape["points"]]
            ys = [float(point[1]) for point in shape["points"]]
            return [min(xs), min(ys), max(xs), max(ys)]
    raise Invalid(
        _("The annotation has no shape with the id %(id)s.") % {"id": shape_id},
        code="unknown_shape",
    )
