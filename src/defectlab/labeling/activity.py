"""Daily activity (``Activity``: per project, UTC day, person and label — submissions,
approvals and rejections credited to the work's author, verdicts given to the reviewer, and
labeling seconds), counted live and rebuilt from history by one rule.

Live: a save (``credit_save``) and a verdict (``credit_review``) add their part in their own
transaction, by one upsert a kind of row that adds to what is there (``add_activity``), so
people working at once never lose a count. Which rows an event adds to, and how much, is one
rule (``save_credits``, ``review_credits`` → ``Credit``) that the rebuild applies too.

Rebuilt (``rebuild_activity``, ``defectlab recount-statistics --activity``): from what the
database keeps — each saved version (``AnnotationVersion``: its author, day, labeling seconds
and shapes' labels), the submissions in the audit trail (``task.submitted``, naming the task
and the version it submitted) and the verdicts (``Review``: reviewer, verdict, day and the
version judged, whose author and labels it credits). Versions written by imports (and by
fitting shapes to an image's size) carry no labeling seconds and no submission: they count
nothing, as they did live. History the database no longer holds is not recounted: work on
tasks deleted since (their versions and reviews went with them), submissions whose audit rows
are gone (removed by a retention policy, or from before submissions were audited), and the
work of people deleted since (their rows went with them, live too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.labeling.counters import upsert_adding
from defectlab.labeling.models import Activity, AnnotationVersion, Label, Project, Review, Task
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent

ACTIVITY_COUNTS = ("submitted", "approved", "rejected", "reviews", "lead_time")

ActivityKey = tuple[date, int | None, int | None]  # (UTC day, person, label)


@dataclass(frozen=True, slots=True)
class Credit:
    """What one event adds to a project's activity: ``amounts`` (in ``ACTIVITY_COUNTS`` order)
    on ``person``'s row with no label (the tasks) and on the row of each of ``labels``; with no
    person (nobody to credit), on the label rows alone. The one rule of which rows an event adds
    to, shared by live counting (``apply_credits``) and the rebuild (``history``)."""

    person: int | None
    labels: tuple[int, ...]
    amounts: tuple[float, ...]

    def rows(self) -> list[tuple[int | None, int | None]]:
        """(person, label) of each row it adds to: the task row first, then label order."""
        head: list[tuple[int | None, int | None]] = (
            [] if self.person is None else [(self.person, None)]
        )
        return head + [(self.person, label) for label in self.labels]


def credited(person_id: int | None, labels: Iterable[int] = (), **counts: float) -> list[Credit]:
    """``counts`` (of ``ACTIVITY_COUNTS``) for ``person_id`` on the task's row and ``labels``'
    rows (``Credit``); none when every count is zero."""
    unknown = set(counts) - set(ACTIVITY_COUNTS)
    if unknown:
        raise ValueError(f"unknown activity counts {sorted(unknown)}")
    if not any(counts.values()):
        return []
    amounts = tuple(counts.get(name, 0) for name in ACTIVITY_COUNTS)
    return [Credit(person_id, tuple(sorted(set(labels))), amounts)]


def save_credits(
    person_id: int | None, labels: Iterable[int], *, submit: bool, lead_time: float
) -> list[Credit]:
    """A save's activity: its labeling seconds and, when it submits, the submission — to the
    saver, on the task's row and on the row of each label its shapes use (``labels``). A
    class's labeling seconds are thus those of the saves whose shapes use it, each counted in
    full (a save with two classes counts toward both: per class they do not add up to the
    total, which only the task's row holds). Nothing for a saver no longer known (a deleted
    person: their rows went with them)."""
    if person_id is None:
        return []
    return credited(person_id, labels, submitted=int(submit), lead_time=lead_time)


def review_credits(
    reviewer_id: int | None, author_id: int | None, verdict: str, labels: Iterable[int]
) -> list[Credit]:
    """A verdict's activity: one review given, to the reviewer; one approval or rejection, to
    the work's author (the task's submitter, else the annotation's author); each on the task's
    row and on the row of each of ``labels`` (the classes of the annotation the verdict is on),
    so that a class filter keeps the reviews of its work. No author known (work whose author
    was deleted): the label rows alone, with no person (the per-class numbers still count it).
    Nothing for a reviewer no longer known (their rows went with them)."""
    labels = sorted(set(labels))
    given = [] if reviewer_id is None else credited(reviewer_id, labels, reviews=1)
    approved = verdict == "approve"
    return given + credited(author_id, labels, approved=int(approved), rejected=int(not approved))


def add_credits(into: dict[ActivityKey, list[float]], day: date, credits: Iterable[Credit]) -> None:
    """Add ``credits`` on ``day`` to ``into``: (day, person, label) → amounts."""
    for given in credits:
        for person, label in given.rows():
            row = into.setdefault((day, person, label), [0] * len(ACTIVITY_COUNTS))
            for index, amount in enumerate(given.amounts):
                row[index] += amount


# The row with no person has its own unique index (NULLs are distinct in the others).
ACTIVITY_TARGETS = {
    "task": "(project_id, day, person_id) WHERE label_id IS NULL",
    "label": "(project_id, day, person_id, label_id) WHERE label_id IS NOT NULL",
    "nobody": "(project_id, day, label_id) WHERE label_id IS NOT NULL AND person_id IS NULL",
}
ACTIVITY_BATCH = 200  # rows a statement


def add_activity(
    organization_id: int, project_id: int, rows: Mapping[ActivityKey, Sequence[float]]
) -> None:
    """Add ``rows`` ((day, person, label) → amounts) to the project's activity: one ``INSERT …
    ON CONFLICT DO UPDATE`` a kind of row (task rows, label rows, label rows of nobody) and
    batch, adding to what is there, in (day, person, label) order: safe when many people work
    at once, on SQLite and PostgreSQL."""
    kinds: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in ACTIVITY_TARGETS}
    for (day, person, label), amounts in sorted(rows.items(), key=_activity_order):
        if not any(amounts):
            continue
        kind = "task" if label is None else "label" if person is not None else "nobody"
        day_value = connection.ops.adapt_datefield_value(day)
        kinds[kind].append((organization_id, project_id, day_value, person, label, *amounts))
    columns = ("organization_id", "project_id", "day", "person_id", "label_id", *ACTIVITY_COUNTS)
    for kind, values in kinds.items():
        upsert_adding(
            Activity, columns, ACTIVITY_TARGETS[kind], ACTIVITY_COUNTS, values, batch=ACTIVITY_BATCH
        )


def _activity_order(item: tuple[ActivityKey, Any]) -> tuple[Any, ...]:
    (day, person, label), _amounts = item
    return (day, person is None, person or 0, label is not None, label or 0)


def credit(
    task: Task, person_id: int | None, *, labels: Iterable[int] = (), **counts: float
) -> None:
    """Add ``counts`` (of ``ACTIVITY_COUNTS``) to ``person_id``'s activity in the task's project
    today (``credited``, ``add_activity``): on the task's row (no label) and, when ``labels``
    are given, on each label's row. Nobody to credit: the label rows alone, with no person."""
    apply_credits(task, credited(person_id, labels, **counts))


def apply_credits(task: Task, credits: Iterable[Credit]) -> None:
    """``credits`` added to the task's project's activity today (UTC)."""
    rows: dict[ActivityKey, list[float]] = {}
    add_credits(rows, timezone.now().date(), credits)
    if rows:
        add_activity(task.organization_id, task.project_id, rows)


MAX_LEAD_TIME = 86400.0  # seconds: the most one save counts


def lead_seconds(value: Any) -> float:
    """A save's labeling seconds as counted: at least 0 and at most a day (``MAX_LEAD_TIME``) —
    the client's clock measures it, and one wrong clock must not swamp a person's totals nor
    overflow the sums; not a finite number: Invalid."""
    try:
        seconds = float(value or 0.0)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise Invalid(
            _("The lead time must be a number of seconds."), details={"field": "lead_time"}
        )
    return min(max(seconds, 0.0), MAX_LEAD_TIME)


def credit_save(
    task: Task, person_id: int, shapes: Sequence[dict[str, Any]], *, submit: bool, lead_time: float
) -> None:
    """A save's activity (``save_credits``), today."""
    labels = {shape["label"] for shape in shapes}
    apply_credits(task, save_credits(person_id, labels, submit=submit, lead_time=lead_time))


def credit_review(
    task: Task, reviewer_id: int, author_id: int | None, verdict: str, labels: Sequence[int]
) -> None:
    """A verdict's activity (``review_credits``), today."""
    apply_credits(task, review_credits(reviewer_id, author_id, verdict, labels))


# ---------------------------------------------------------------------------- rebuild


def rebuild_activity(project_id: int) -> int:
    """Replace the project's activity by the one counted from its history (``history``); how
    many rows it has. One transaction holding the project's row, as every save and verdict does
    while it credits: work credited meanwhile waits and lands on the rebuilt rows, none is lost
    or counted twice (saves in the project wait the few seconds a large history takes)."""
    with transaction.atomic():
        organization_id = (
            Project.all_objects.select_for_update()
            .values_list("organization_id", flat=True)
            .get(pk=project_id)
        )
        rows = history(project_id, organization_id)
        Activity.objects.filter(project_id=project_id).delete()
        add_activity(organization_id, project_id, rows)
    return sum(1 for amounts in rows.values() if any(amounts))


@dataclass
class _Judged:
    """What a verdict on a version needs of it: its author and its labels."""

    author: int | None = None
    labels: tuple[int, ...] = ()


def history(project_id: int, organization_id: int) -> dict[ActivityKey, list[float]]:
    """The project's activity counted from its saved versions, the submissions in the audit
    trail and its verdicts, by the rules live counting applies (``save_credits``,
    ``review_credits``): (day, person, label) → amounts."""
    labels = set(Label.objects.filter(project_id=project_id).values_list("pk", flat=True))
    submitted = _submissions(project_id, organization_id)
    reviews = list(
        Review.objects.filter(task__project_id=project_id)
        .order_by("id")
        .values_list("task_id", "annotation_version", "reviewer_id", "verdict", "created_at")
    )
    judged = {(task, version): _Judged() for task, version, *_rest in reviews}
    submitters: dict[int, list[tuple[int, int | None]]] = {}  # task → (version, its author)
    rows: dict[ActivityKey, list[float]] = {}
    versions = (
        AnnotationVersion.objects.filter(annotation__task__project_id=project_id)
        .order_by("id")
        .values_list(
            "annotation__task_id", "version", "author_id", "lead_time", "shapes", "created_at"
        )
    )
    for task, version, author, lead_time, shapes, created in versions.iterator(chunk_size=2000):
        used = sorted({shape.get("label") for shape in shapes or []} & labels)
        submit = (task, version) in submitted
        if submit:
            submitters.setdefault(task, []).append((version, author))
        if (task, version) in judged:
            judged[(task, version)] = _Judged(author, tuple(used))
        given = save_credits(author, used, submit=submit, lead_time=_stored_lead(lead_time))
        add_credits(rows, _day(created), given)
    for task, version, reviewer, verdict, created in reviews:
        work = judged[(task, version)]
        whose = _submitter(submitters.get(task, []), version) or work.author
        add_credits(rows, _day(created), review_credits(reviewer, whose, verdict, work.labels))
    return rows


def _submissions(project_id: int, organization_id: int) -> set[tuple[int, int]]:
    """(task, version) of each submission of the project's tasks the audit trail holds."""
    tasks = set(Task.objects.filter(project_id=project_id).values_list("pk", flat=True))
    found: set[tuple[int, int]] = set()
    events = AuditEvent.objects.filter(
        organization_id=organization_id,
        action=AuditAction.TASK_SUBMITTED.value,
        target_type=Task._meta.model_name,
    ).values_list("target_id", "data")
    for target, data in events.iterator(chunk_size=5000):
        version = data.get("version") if isinstance(data, dict) else None
        if target.isdigit() and int(target) in tasks and isinstance(version, int):
            found.add((int(target), version))
    return found


def _submitter(submissions: Sequence[tuple[int, int | None]], version: int) -> int | None:
    """Who submitted the work a verdict on ``version`` judges — the task's submitter then: the
    author of its last submitted version up to ``version`` — or None (not known: the verdict
    then goes to the judged version's author, as live)."""
    before = [author for submitted, author in submissions if submitted <= version]
    return before[-1] if before else None


def _stored_lead(value: Any) -> float:
    """A version's labeling seconds as live counting took them (``lead_seconds``); 0 for a
    stored value that is no number."""
    try:
        return lead_seconds(value)
    except Invalid:
        return 0.0


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
