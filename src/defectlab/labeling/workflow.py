"""The labeling workflow: handing out tasks under a lock (skipped ones last), the one rule for who
may save, submit or review a task (``check``), saving annotations with optimistic concurrency
(every version kept), predictions, and review verdicts. A submission and a verdict write their
audit row here, as the person who gave them."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from defectlab.errors import Conflict, DefectLabError, Forbidden, Invalid
from defectlab.geometry import Shape, ShapeError, shapes_from_json, validate_shapes
from defectlab.labeling.activity import credit_review, credit_save, lead_seconds
from defectlab.labeling.counters import add_tally
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Issue,
    Label,
    Prediction,
    Project,
    Review,
    SkippedTask,
    Task,
    TaskStatus,
    Verdict,
)
from defectlab.labeling.proposals import clean_fates, merge_fates, version_fates
from defectlab.labeling.queues import (
    Queue,
    in_order,
    in_review,
    not_skipped,
    on_saved,
    open_work,
)
from defectlab.labeling.services import set_status
from defectlab.labeling.signals import annotation_saved, annotation_submitted, task_event
from defectlab.labeling.sizes import SAVE_TIMEOUT, learn_size
from defectlab.labeling.tasks import NewPrediction, add_predictions, index_labels
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.roles import Can, allows
from defectlab.tenancy.services import record, require

OPEN_FOR_LABELING = (TaskStatus.NEW, TaskStatus.IN_PROGRESS, TaskStatus.REJECTED)

# How many skips are remembered per person and project; older ones are forgotten (``skip``).
SKIPS_KEPT = 200

# ---------------------------------------------------------------------------- the rule


class Act(StrEnum):
    SAVE = "save"
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"


def check(task: Task, user: User, act: Act) -> None:
    """May ``user`` do ``act`` to ``task`` now? Returns if so, raises if not.

    The one rule every path calls (API, canvas, review verdicts), written out in docs/api.md:

    - Open work (new, in progress, rejected) is saved and submitted by its assignee, or by
      anyone who may annotate while it is unassigned. A rejection assigns it back to whoever
      submitted it. Managers (and admins, owners) may save and submit any open task.
    - Submitted and approved work is never submitted again. It is changed only by reviewers
      correcting someone else's work, and by managers; its author waits for a rejection.
    - Only submitted work gets a verdict, from a reviewer. Nobody approves work they submitted
      unless the project allows self-approval (one-person teams); withdrawing it (reject) is fine.
    - Someone else's live lock stops everyone but managers (409, it passes).

    Forbidden (403) when the rule says no, Conflict (409) when the task is not in a state for it
    right now, NotFound for someone outside the organization."""
    verdict = act in (Act.APPROVE, Act.REJECT)
    role = require(user, task.organization_id, Can.REVIEW if verdict else Can.ANNOTATE)
    manages_projects = allows(role, Can.MANAGE_PROJECTS)  # managers, admins, owners
    own = task.submitted_by_id is not None and task.submitted_by_id == user.pk
    if verdict:
        if task.status != TaskStatus.SUBMITTED:
            raise Conflict(_("Only submitted tasks can be reviewed."), code="not_submitted")
        if act == Act.APPROVE and own and not task.project.allow_self_approval:
            raise Forbidden(
                _("You submitted this work, so someone else must approve it."), code="own_work"
            )
        return
    if task.status in OPEN_FOR_LABELING:
        if not manages_projects and task.assignee_id not in (None, user.pk):
            raise Forbidden(_("This task is assigned to someone else."), code="assigned_elsewhere")
    elif act == Act.SUBMIT:
        raise Forbidden(
            _("This task was submitted already. Save your corrections without submitting."),
            code="already_submitted",
        )
    elif not manages_projects:
        if not allows(role, Can.REVIEW):
            if task.status == TaskStatus.APPROVED:
                raise Forbidden(
                    _("This task is approved; only a reviewer can change it."), code="approved"
                )
            raise Forbidden(
                _("This task waits for review; it can be changed again if it is sent back."),
                code="submitted",
            )
        if own:
            raise Forbidden(
                _("You submitted this work, so someone else must correct it."), code="own_work"
            )
    if _held_by_other(task, user) and not manages_projects:
        raise Conflict(_("Someone else is working on this task."), code="locked")


def may(task: Task, user: User, act: Act) -> bool:
    """``check`` as a yes or no, for pages deciding what to offer."""
    try:
        check(task, user, act)
    except DefectLabError:
        return False
    return True


# ---------------------------------------------------------------------------- next task


def _unlocked(now: Any) -> Q:
    return Q(lock_owner__isnull=True) | Q(lock_expires_at__lte=now)


def next_task(project: Project, user: User) -> Task | None:
    """The task this annotator should work on now, reserved for them so nobody else gets it.

    Order: the one they already hold; tasks rejected back to them; tasks assigned to them;
    then unassigned new work. Tasks they skipped go to the back of the line (``skip``)."""
    tasks = Task.objects.filter(project_id=project.pk)
    held = tasks.filter(status__in=OPEN_FOR_LABELING)
    queues = [
        Queue(tasks.filter(assignee=user, status=TaskStatus.REJECTED), own=True),
        Queue(open_work(tasks.filter(assignee=user)), own=True),
        Queue(open_work(tasks.filter(assignee__isnull=True))),
    ]
    task = _reserve(user, held=not_skipped(held, user), queues=in_order(queues, user, project))
    return _start(task) if task is not None else None


def next_review(project: Project, user: User) -> Task | None:
    """The submitted task this reviewer should look at now: others' work, oldest first; their
    own only where the project allows self-approval, and last. Skipped ones come after all."""
    submitted = in_review(Task.objects.filter(project_id=project.pk))
    others = submitted.exclude(submitted_by=user)
    own = submitted.filter(submitted_by=user)
    held = submitted if project.allow_self_approval else others
    queues = (
        [Queue(others), Queue(own, own=True)] if project.allow_self_approval else [Queue(others)]
    )
    return _reserve(user, held=not_skipped(held, user), queues=in_order(queues, user, project))


def _reserve(user: User, *, held: QuerySet[Task], queues: list[QuerySet[Task]]) -> Task | None:
    """The task ``user`` already holds in ``held``, else the first free one of ``queues`` (each
    in its own order).

    A reservation is one conditional UPDATE, so two people asking at once never both win."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.TASK_LOCK_SECONDS)
    mine = held.filter(lock_owner=user, lock_expires_at__gt=now).order_by("id").first()
    if mine is not None:
        Task.objects.filter(pk=mine.pk).update(lock_expires_at=until)
        mine.lock_expires_at = until
        return mine
    for queue in queues:
        for _attempt in range(5):
            candidates = list(queue.filter(_unlocked(now)).values_list("id", flat=True)[:10])
            if not candidates:
                break
            for task_id in candidates:
                if (
                    Task.objects.filter(pk=task_id)
                    .filter(_unlocked(now))
                    .update(lock_owner=user, lock_expires_at=until)
                ):
                    return Task.objects.get(pk=task_id)
    return None


def _start(task: Task) -> Task:
    with transaction.atomic():
        # Re-read under the write lock: a manager may have saved this task since we won it.
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.status == TaskStatus.NEW:
            set_status(task, TaskStatus.IN_PROGRESS)
            task.save(update_fields=["status", "updated_at"])
    return task


def release(task: Task, user: User) -> None:
    Task.objects.filter(pk=task.pk, lock_owner=user).update(lock_owner=None, lock_expires_at=None)


def skip(task: Task, user: User) -> None:
    """Give ``task`` back (if ``user`` holds it) and remember, in the database, that they skipped
    it: "next" (``next_task``, ``next_review``) then hands them everything else first, whether
    they ask from this browser, another tab or device, or a script with an API token. Other
    people's queues are untouched.

    Only the newest ``SKIPS_KEPT`` skips per person and project are kept; skipping a task again
    makes it the newest. A task's skips are forgotten when its work moves on (submitted, or a
    review verdict; see ``_forget_skips``): rejected work comes back as new work, and a reviewer's
    skip means nothing for the next submission. Deleting a task, project or user deletes its
    skips with it."""
    release(task, user)
    with transaction.atomic():
        SkippedTask.objects.filter(task=task, user=user).delete()
        # Two tabs skipping the same task at once: one row wins, the other adds nothing.
        SkippedTask.objects.bulk_create(
            [
                SkippedTask(
                    organization_id=task.organization_id,
                    project_id=task.project_id,
                    task=task,
                    user=user,
                )
            ],
            ignore_conflicts=True,
        )
        mine = SkippedTask.objects.filter(user=user, project_id=task.project_id)
        forgotten = list(mine.order_by("-id").values_list("id", flat=True)[SKIPS_KEPT:])
        if forgotten:
            SkippedTask.objects.filter(pk__in=forgotten).delete()


def _forget_skips(task: Task) -> None:
    """Forget everyone's skips of ``task``: its work moved on (see ``skip``)."""
    SkippedTask.objects.filter(task_id=task.pk).delete()


def _held_by_other(task: Task, user: User) -> bool:
    return (
        task.lock_owner_id is not None
        and task.lock_owner_id != user.pk
        and task.lock_expires_at is not None
        and task.lock_expires_at > timezone.now()
    )


# ---------------------------------------------------------------------------- annotations


def clean_shapes(
    project: Project, task: Task, data: Any, *, predictions: bool = False
) -> list[Shape]:
    """Shapes checked against the image and the project's schema, with attribute defaults filled.

    On an image kept by reference whose size is still unknown, the size is learned first; if
    the image cannot be fetched, the shapes are accepted and checked once the size is learned
    (see labeling.sizes)."""
    try:
        shapes = shapes_from_json(data)
        if shapes:
            learn_size(task, timeout=min(SAVE_TIMEOUT, settings.FETCH_TIMEOUT))
        if task.width and task.height:
            validate_shapes(shapes, task.width, task.height)
    except ShapeError as error:
        details = None if error.index is None else {"shape": error.index + 1}
        raise Invalid(str(error), code="invalid_shape", details=details) from None
    labels = {label.pk: label for label in Label.objects.filter(project_id=project.pk)}
    cleaned = []
    for index, shape in enumerate(shapes):
        where = {"shape": index + 1}
        label = labels.get(shape.label)
        if label is None:
            raise Invalid(
                _("Shape %(shape)s uses a label that is not in this project.") % where,
                details=where,
            )
        if shape.type not in project.shape_types:
            raise Invalid(
                _("Shape %(shape)s is a %(type)s, which this project does not use.")
                % {**where, "type": shape.type},
                details=where,
            )
        if shape.score is not None and not predictions:
            shape = Shape(shape.type, shape.points, shape.label, shape.attributes, None, shape.id)
        cleaned.append(_with_attributes(shape, label, where))
    return cleaned


def _with_attributes(shape: Shape, label: Label, where: dict[str, int]) -> Shape:
    schema = {attribute["name"]: attribute for attribute in label.attributes}
    values = dict(shape.attributes)
    for name, value in values.items():
        if name not in schema:
            raise Invalid(
                _("Shape %(shape)s: label %(label)s has no attribute %(name)s.")
                % {**where, "label": label.name, "name": name},
                details=where,
            )
        if value not in schema[name]["options"]:
            raise Invalid(
                _("Shape %(shape)s: %(value)s is not an option of %(name)s.")
                % {**where, "value": value, "name": name},
                details=where,
            )
    for name, attribute in schema.items():
        values.setdefault(name, attribute["default"])
    return Shape(shape.type, shape.points, shape.label, values, shape.score, shape.id)


def clean_image_tags(project: Project, tags: Any) -> list[str]:
    known = {tag["name"] for tag in project.tags}
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise Invalid(_("Image tags must be a list of tag names."))
    unknown = [tag for tag in tags if tag not in known]
    if unknown:
        raise Invalid(_("This project has no tag named %(tag)s.") % {"tag": unknown[0]})
    return list(dict.fromkeys(tags))


def save_annotation(
    task: Task,
    user: User,
    *,
    base_version: int | None,
    shapes: Any,
    tags: Any = None,
    lead_time: float = 0.0,
    submit: bool = False,
    proposals: Any = None,
) -> Annotation:
    """Save a new version of the task's annotation (a submission is in the audit trail).

    ``base_version`` is the version the client started from (None for the first one). If
    someone saved in between, nothing is written and Conflict carries the current version,
    so the client can merge instead of overwriting. ``proposals`` says what became of model
    proposals (labeling.proposals); the new version keeps those and the earlier fates."""
    act = Act.SUBMIT if submit else Act.SAVE
    # Who may save is asked first (a 403 before any 400), on the task as it is now; the shapes
    # are then checked outside the lock, as is everything that needs no lock.
    check(Task.objects.select_related("project").get(pk=task.pk), user, act)
    project = task.project
    checked = clean_shapes(project, task, shapes)
    unchecked = not (task.width and task.height)  # the image's size could not be learned
    cleaned = [shape.to_dict() for shape in checked]
    image_tags = clean_image_tags(project, tags)
    fates = clean_fates(task, proposals)
    # The fates kept by the version this save starts from never change once written, so they
    # are read before the lock; the version is checked under it (a stale save writes nothing).
    fates = merge_fates(version_fates(task, base_version), fates)
    lead_time = lead_seconds(lead_time)
    with transaction.atomic():
        # Re-read under the write lock: status and counters must move from the true state, and
        # the rule is asked again (a verdict or a reassignment may have landed meanwhile).
        task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
        check(task, user, act)
        if unchecked and task.width and task.height:
            # The size was learned meanwhile (and the shapes then saved fitted to it).
            clean_shapes(project, task, shapes)
        annotation = _write_version(
            task, user, base_version,
            shapes=cleaned, tags=image_tags, lead_time=lead_time, fates=fates,
        )  # fmt: skip
        becomes = _becomes(task, submit)
        change = index_labels(task, cleaned, image_tags, write_count=False, tally=False, becomes=becomes)  # fmt: skip
        _mark_saved(task, user, annotation, submit=submit)
        add_tally(task.project_id, change)  # after the project's row (``_mark_saved``)
        credit_save(task, user.pk, cleaned, submit=submit, lead_time=lead_time)
        transaction.on_commit(partial(annotation_saved.send_robust, sender=Task, submit=submit))
        if submit:
            record(
                None,
                AuditAction.TASK_SUBMITTED,
                organization=task.organization_id,
                target=task,
                actor=user,
                data={"version": annotation.version},
            )
    return annotation


def _write_version(
    task: Task,
    user: User,
    base_version: int | None,
    *,
    shapes: list[dict[str, Any]],
    tags: list[str],
    lead_time: float,
    fates: list[dict[str, Any]],
) -> Annotation:
    """The task's annotation moved from ``base_version`` to the next version, and that version
    kept in the history; Conflict (nothing written) when someone saved in between. Inside the
    caller's transaction, with the task locked."""
    current = Annotation.objects.filter(task=task).first()
    if current is None:
        if base_version:
            raise Conflict(_("This annotation changed since you opened it."), code="stale")
        try:
            with transaction.atomic():
                annotation = Annotation.objects.create(
                    organization_id=task.organization_id,
                    task=task,
                    version=1,
                    shapes=shapes,
                    tags=tags,
                    author=user,
                    lead_time=lead_time,
                )
        except IntegrityError:
            raise _stale(Annotation.objects.get(task=task)) from None
    else:
        changes = {
            "version": current.version + 1,
            "shapes": shapes,
            "tags": tags,
            "author": user,
            "lead_time": current.lead_time + lead_time,
            "updated_at": timezone.now(),
        }
        updated = Annotation.objects.filter(pk=current.pk, version=base_version or 0).update(
            **changes
        )
        if not updated:
            raise _stale(current)
        # The row is exactly what was just written (the task is locked): no need to read it.
        annotation = current
        for name, value in changes.items():
            setattr(annotation, name, value)
    AnnotationVersion.objects.create(
        proposal_fates=fates,
        organization_id=task.organization_id,
        annotation=annotation,
        version=annotation.version,
        shapes=shapes,
        tags=tags,
        author=user,
        lead_time=lead_time,
    )
    return annotation


def _mark_saved(task: Task, user: User, annotation: Annotation, *, submit: bool) -> None:
    """The task's status, submitter and lock after a save (submitted, or in progress when it
    was new); a submission also queues the write to the project's target storages."""
    task.has_annotation = True
    if submit:
        set_status(task, TaskStatus.SUBMITTED, tally=False)  # moved by the save's change
        task.submitted_by = user
        _forget_skips(task)
        if task.lock_owner_id == user.pk:
            task.lock_owner = None
            task.lock_expires_at = None
        task_event.send(sender=Task, event="task.submitted", task=task, user=user)
        # Once committed, tell who listens (data movement queues writes to the project's target
        # storages: jobs, so a broken target never blocks or loses the save).
        transaction.on_commit(
            partial(
                annotation_submitted.send,
                sender=Task,
                task_id=task.pk,
                project_id=task.project_id,
                version=annotation.version,
                user_id=user.pk,
            ),
            robust=True,
        )
    elif task.status == TaskStatus.NEW:
        set_status(task, TaskStatus.IN_PROGRESS, tally=False)
    task.save(
        update_fields=[
            "has_annotation",
            "status",
            "submitted_by",
            "lock_owner",
            "lock_expires_at",
            "shape_count",
            "updated_at",
            *on_saved(task, annotation.shapes),
        ]
    )


def _becomes(task: Task, submit: bool) -> str:
    """The status a save gives ``task`` (``_mark_saved``)."""
    new = TaskStatus.IN_PROGRESS if task.status == TaskStatus.NEW else task.status
    return TaskStatus.SUBMITTED if submit else new


def _stale(current: Annotation) -> Conflict:
    return Conflict(
        _(
            "This annotation changed since you opened it (now version %(version)s). Reload to see it; your edits were not saved."
        )
        % {"version": current.version},
        code="stale",
        details={"version": current.version, "shapes": current.shapes, "tags": current.tags},
    )


# ---------------------------------------------------------------------------- predictions


def add_prediction(task: Task, *, model_name: str, model_version: str, shapes: Any) -> Prediction:
    if not model_name.strip():
        raise Invalid(_("A prediction needs a model name."))
    cleaned = [
        shape.to_dict() for shape in clean_shapes(task.project, task, shapes, predictions=True)
    ]
    (prediction,) = add_predictions([NewPrediction(task, model_name, model_version, cleaned)])
    return prediction


# ---------------------------------------------------------------------------- review


def review(task: Task, user: User, *, verdict: str, comment: str = "") -> Review:
    """Approve or reject a submitted task (in the audit trail, with the comment). A rejected task
    goes back to whoever submitted it. Approval waits until every issue pinned on the task is
    resolved (labeling.issues); rejecting with issues open is how work goes back."""
    if verdict not in Verdict.values:
        raise Invalid(_("The verdict must be approve or reject."))
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
        check(task, user, Act.APPROVE if verdict == Verdict.APPROVE else Act.REJECT)
        if verdict == Verdict.REJECT and not comment.strip():
            raise Invalid(_("Say what needs fixing when you reject a task."))
        unresolved = Issue.objects.filter(task=task, resolved_at__isnull=True).count()
        if verdict == Verdict.APPROVE and unresolved:
            raise Conflict(
                ngettext(
                    "This task has %(count)s open issue. Resolve it, or reject the task so it is fixed, before approving.",
                    "This task has %(count)s open issues. Resolve them, or reject the task so they are fixed, before approving.",
                    unresolved,
                )
                % {"count": unresolved},
                code="open_issues",
                details={"open_issues": unresolved},
            )
        annotation = Annotation.objects.get(task=task)
        verdict_row = Review.objects.create(
            organization_id=task.organization_id,
            task=task,
            annotation_version=annotation.version,
            verdict=verdict,
            comment=comment.strip(),
            reviewer=user,
        )
        approved = verdict == Verdict.APPROVE
        author = task.submitted_by_id or annotation.author_id
        labels = set_status(
            task,
            TaskStatus.APPROVED if approved else TaskStatus.REJECTED,
            assignee=task.assignee_id if approved else author,
        )
        task.lock_owner = None
        task.lock_expires_at = None
        task.save(
            update_fields=["status", "assignee", "lock_owner", "lock_expires_at", "updated_at"]
        )
        _forget_skips(task)
        credit_review(task, user.pk, author, verdict, labels)
        task_event.send(
            sender=Task,
            event="task.approved" if verdict == Verdict.APPROVE else "task.rejected",
            task=task,
            user=user,
            comment=verdict_row.comment,
        )
        record(
            None,
            AuditAction.TASK_APPROVED if verdict == Verdict.APPROVE else AuditAction.TASK_REJECTED,
            organization=task.organization_id,
            target=task,
            actor=user,
            data={"comment": verdict_row.comment},
        )
    return verdict_row


def claim(task: Task, user: User) -> bool:
    """Reserve this very task for ``user`` if nobody else holds it; True when it is theirs."""
    now = timezone.now()
    until = now + timedelta(seconds=settings.TASK_LOCK_SECONDS)
    mine_or_free = _unlocked(now) | Q(lock_owner=user)
    return bool(
        Task.objects.filter(pk=task.pk)
        .filter(mine_or_free)
        .update(lock_owner=user, lock_expires_at=until)
    )
