"""The stored counters behind project statistics (``defectlab.insight.statistics``), kept by the
same code that keeps the label index, in the same transaction:

* per task and label (``TaskLabel``): the label's shapes in the current annotation, and how many
  fall in each size bin — log10 of the shape's box area over the image's area, in half-decades
  from 10⁻⁶ (``SIZE_EDGES``; smaller ones count in the first bin) — or in ``size_unknown``
  while the image's size is not known (re-counted when ``labeling.sizes.note_size`` learns it);
* per task: ``Task.shape_count``, and its image tags (``TaskTag``, one row per tag);
* per project, UTC day, person and label (``Activity``, ``credit``): submissions, approvals and
  rejections (credited to the work's author), verdicts given (to the reviewer) and labeling
  seconds — by one upsert that adds to the row, so people working at once never lose a count.

``recount`` rebuilds the per-task counters of a project from its annotations, in batches: the
repair tool (``defectlab recount-statistics``) and what migration 0015 runs on existing data.
Activity is history and cannot be recounted; it starts when the counters do.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.labeling.models import Activity, Annotation, Tally, Task, TaskLabel, TaskTag

# log10(relative area) bin edges: 12 half-decade bins from 10⁻⁶ (a 2×2 box on a 2000×2000
# image) to the whole image. A smaller (or empty) shape counts in the first bin.
SIZE_EDGES: tuple[float, ...] = tuple(-6.0 + 0.5 * index for index in range(13))
SIZE_FIELDS: tuple[str, ...] = tuple(f"size_{index}" for index in range(len(SIZE_EDGES) - 1))
SHAPES_CAP = 10  # the shapes-per-image histogram's last bin is "10 or more"


def size_bin(points: Sequence[Sequence[float]], width: int, height: int) -> int:
    """The size bin of a shape with these points on a ``width`` × ``height`` image."""
    xs = [point[0] for point in points]
    ys = [point[1] for point in points]
    area = (max(xs) - min(xs)) * (max(ys) - min(ys)) if points else 0.0
    share = area / (width * height)
    if share <= 0:
        return 0
    exponent = math.log10(min(share, 1.0))
    return min(max(int((exponent - SIZE_EDGES[0]) // 0.5), 0), len(SIZE_FIELDS) - 1)


@dataclass
class LabelCounts:
    shapes: int = 0
    sizes: list[int] = field(default_factory=lambda: [0] * len(SIZE_FIELDS))
    unknown: int = 0

    def fields(self) -> dict[str, int]:
        return {
            "shapes": self.shapes,
            **dict(zip(SIZE_FIELDS, self.sizes, strict=True)),
            "size_unknown": self.unknown,
        }


def label_counts(
    shapes: Iterable[dict[str, Any]], width: int | None, height: int | None
) -> dict[int, LabelCounts]:
    """Label id → its counters, for an annotation with these shapes (``Shape.to_dict``)."""
    counts: dict[int, LabelCounts] = {}
    known = bool(width and height)
    for shape in shapes:
        counted = counts.setdefault(shape["label"], LabelCounts())
        counted.shapes += 1
        if known:
            counted.sizes[size_bin(shape["points"], width or 1, height or 1)] += 1
        else:
            counted.unknown += 1
    return counts


def label_rows(
    task_id: int, shapes: Iterable[dict[str, Any]], width: int | None, height: int | None
) -> list[TaskLabel]:
    """The task's label index rows, with their counters: one per label its shapes use."""
    counts = label_counts(shapes, width, height)
    return [
        TaskLabel(task_id=task_id, label_id=label, **counts[label].fields())
        for label in sorted(counts)
    ]


LABEL_COLUMNS = ("task", "label", "shapes", *SIZE_FIELDS, "size_unknown")


def label_values(
    task_id: int, shapes: Iterable[dict[str, Any]], width: int | None, height: int | None
) -> list[tuple[int, ...]]:
    """`label_rows` as plain tuples of ``LABEL_COLUMNS``, for bulk inserts."""
    counts = label_counts(shapes, width, height)
    return [
        (task_id, label, counts[label].shapes, *counts[label].sizes, counts[label].unknown)
        for label in sorted(counts)
    ]


def tag_rows(task_id: int, project_id: int, tags: Iterable[str]) -> list[TaskTag]:
    return [
        TaskTag(task_id=task_id, project_id=project_id, name=name) for name in dict.fromkeys(tags)
    ]


def index_annotation(
    task: Task,
    shapes: Sequence[dict[str, Any]],
    tags: Sequence[str] | None,
    *,
    write_count: bool = True,
    tally: bool = True,
    fresh: bool = False,
    becomes: str | None = None,
) -> TallyChange:
    """Replace ``task``'s label index, counters and (unless ``tags`` is None) tag rows with those
    of an annotation with these shapes and tags (rows left alone where they are the same);
    ``task.shape_count`` is set, and written unless ``write_count=False`` (the caller saves the
    task). The project's tally moves by the change — from the task's status as stored (as on
    ``task`` when ``fresh``: read under its lock) to ``becomes`` (the status the caller is about
    to give it; default: the same) — and the change is returned; with ``tally=False`` the caller
    adds it (``add_tally``) once it holds the project's row (project first, then tally). In the
    caller's transaction, the task locked."""
    if fresh:
        before, status = task.shape_count, str(task.status)
    else:
        before, status = Task.objects.values_list("shape_count", "status").get(pk=task.pk)
    after = str(becomes or status)
    change = TallyChange()
    old = TaskLabel.objects.filter(task_id=task.pk)
    stored = {
        label: LabelCounts(counts[0], list(counts[1:-1]), counts[-1])
        for label, *counts in old.values_list("label_id", "shapes", *SIZE_FIELDS, "size_unknown")
    }
    counted = label_counts(shapes, task.width, task.height)
    for label, found in stored.items():
        change.labels(status, label, found, -1)
    for label, found in counted.items():
        change.labels(after, label, found, 1)
    if stored != counted:
        old.delete()
        TaskLabel.objects.bulk_create(label_rows(task.pk, shapes, task.width, task.height))
    if tags is not None or after != status:
        names = list(TaskTag.objects.filter(task_id=task.pk).values_list("name", flat=True))
        wanted = names if tags is None else list(dict.fromkeys(tags))
        for name in names:
            change.add(status, "tag", name, -1)
        for name in wanted:
            change.add(after, "tag", name, 1)
        if sorted(names) != sorted(wanted):
            TaskTag.objects.filter(task_id=task.pk).delete()
            TaskTag.objects.bulk_create(tag_rows(task.pk, task.project_id, wanted))
    change.add(status, "per_image", bucket(before), -1)
    change.add(after, "per_image", bucket(len(shapes)), 1)
    task.shape_count = len(shapes)
    if write_count and before != len(shapes):
        Task.objects.filter(pk=task.pk).update(shape_count=len(shapes))
    if tally:
        add_tally(task.project_id, change)
    return change


def move_status(task: Task, old: str, new: str) -> list[int]:
    """Move ``task``'s part of its project's tally from status ``old`` to ``new`` (its label
    index and tags as stored, its shape count as on ``task``); the labels of its label index.
    Called by ``labeling.services.set_status``, with the project's row updated first."""
    change = TallyChange()
    rows = TaskLabel.objects.filter(task_id=task.pk)
    labels = []
    for label, *counts in rows.values_list("label_id", "shapes", *SIZE_FIELDS, "size_unknown"):
        found = LabelCounts(counts[0], list(counts[1:-1]), counts[-1])
        change.labels(old, label, found, -1)
        change.labels(new, label, found, 1)
        labels.append(label)
    for name in TaskTag.objects.filter(task_id=task.pk).values_list("name", flat=True):
        change.add(old, "tag", name, -1)
        change.add(new, "tag", name, 1)
    change.add(old, "per_image", bucket(task.shape_count), -1)
    change.add(new, "per_image", bucket(task.shape_count), 1)
    add_tally(task.project_id, change)
    return labels


def _counts_of(row: TaskLabel) -> LabelCounts:
    return LabelCounts(row.shapes, [getattr(row, name) for name in SIZE_FIELDS], row.size_unknown)


def bucket(shape_count: int) -> str:
    """The shapes-per-image bin of a task with this many shapes."""
    return str(min(shape_count, SHAPES_CAP))


# ---------------------------------------------------------------------------- tally


class TallyChange(Counter[tuple[str, str, str]]):
    """How a project's tally (``Tally``) moves: (status, part, key) → how much."""

    def add(self, status: str, part: str, key: str, amount: int) -> None:
        self[(str(status), part, key)] += amount

    def labels(self, status: str, label: int, counts: LabelCounts, sign: int) -> None:
        status = str(status)
        self[(status, "images", str(label))] += sign
        self[(status, "shapes", str(label))] += sign * counts.shapes
        for index, number in enumerate(counts.sizes):
            if number:
                self[(status, "size", f"{label}:{index}")] += sign * number
        if counts.unknown:
            self[(status, "size", f"{label}:u")] += sign * counts.unknown


def add_tally(project_id: int, change: Mapping[tuple[str, str, str], int]) -> None:
    """Add ``change`` to the project's tally: one ``INSERT … ON CONFLICT DO UPDATE`` adding to
    the rows, in (status, part, key) order, so that people saving at once queue for each row in
    the same order (no deadlock) and no count is lost."""
    rows = sorted((*key, amount) for key, amount in change.items() if amount)
    if not rows:
        return
    table = connection.ops.quote_name(Tally._meta.db_table)
    for start in range(0, len(rows), 300):
        part = rows[start : start + 300]
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(part))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (project_id, status, part, key, count) VALUES {values} "
                f"ON CONFLICT (project_id, status, part, key) DO UPDATE SET count = "
                f"{table}.count + excluded.count",
                [value for row in part for value in (project_id, *row)],
            )


def tally_of(project_id: int, task_ids: Sequence[int] | None = None) -> TallyChange:
    """The tally of a project's tasks (or of ``task_ids`` among them) counted from the per-task
    counters: SQL aggregates (for deletes and ``recount``)."""
    tasks = Task.objects.filter(project_id=project_id)
    labels = TaskLabel.objects.filter(task__project_id=project_id)
    tags = TaskTag.objects.filter(project_id=project_id)
    if task_ids is not None:
        tasks, labels, tags = (
            tasks.filter(pk__in=task_ids),
            labels.filter(task_id__in=task_ids),
            tags.filter(task_id__in=task_ids),
        )
    change = TallyChange()
    sums = {name: Sum(name) for name in ("shapes", *SIZE_FIELDS, "size_unknown")}
    grouped = labels.values("task__status", "label_id").annotate(n=Count("id"), **sums)
    for row in grouped.order_by():
        counts = LabelCounts(
            row["shapes"], [row[name] for name in SIZE_FIELDS], row["size_unknown"]
        )
        change.labels(row["task__status"], row["label_id"], counts, 1)
        change.add(row["task__status"], "images", str(row["label_id"]), row["n"] - 1)
    for status, name, number in (
        tags.values_list("task__status", "name").annotate(n=Count("id")).order_by()
    ):
        change.add(status, "tag", name, number)
    for status, count, number in (
        tasks.values_list("status", "shape_count").annotate(n=Count("id")).order_by()
    ):
        change.add(status, "per_image", bucket(count), number)
    return change


# ---------------------------------------------------------------------------- activity

ACTIVITY_COUNTS = ("submitted", "approved", "rejected", "reviews", "lead_time")


def credit(
    task: Task, person_id: int | None, *, labels: Iterable[int] = (), **counts: float
) -> None:
    """Add ``counts`` (of ``ACTIVITY_COUNTS``) to ``person_id``'s activity in the task's project
    today: on the task's row (no label) and, when ``labels`` are given, on each label's row.
    One ``INSERT … ON CONFLICT DO UPDATE`` a row, adding to what is there: safe when many people
    work at once, on SQLite and PostgreSQL. Nobody to credit (work whose author was deleted):
    the label rows alone, with no person (the per-class numbers still count it)."""
    if not any(counts.values()):
        return
    unknown = set(counts) - set(ACTIVITY_COUNTS)
    if unknown:
        raise ValueError(f"unknown activity counts {sorted(unknown)}")
    day = timezone.now().date()
    names = [name for name in ACTIVITY_COUNTS if counts.get(name)]
    table = connection.ops.quote_name(Activity._meta.db_table)
    columns = ", ".join(
        ["organization_id", "project_id", "day", "person_id", "label_id", *ACTIVITY_COUNTS]
    )
    places = ", ".join(["%s"] * (5 + len(ACTIVITY_COUNTS)))
    adds = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in names)
    values = [counts.get(name, 0) for name in ACTIVITY_COUNTS]
    head = f"INSERT INTO {table} ({columns}) VALUES ({places})"
    organization, project = task.organization_id, task.project_id
    day_value = connection.ops.adapt_datefield_value(day)
    # The row with no person has its own unique index (NULLs are distinct in the others).
    target = (
        "(project_id, day, label_id) WHERE label_id IS NOT NULL AND person_id IS NULL"
        if person_id is None
        else "(project_id, day, person_id, label_id) WHERE label_id IS NOT NULL"
    )
    with connection.cursor() as cursor:
        if person_id is not None:
            cursor.execute(
                f"{head} ON CONFLICT (project_id, day, person_id) WHERE label_id IS NULL "
                f"DO UPDATE SET {adds}",
                [organization, project, day_value, person_id, None, *values],
            )
        chosen = sorted(set(labels))
        if chosen:  # every label's row by one statement, in label order
            rows = ", ".join([f"({places})"] * len(chosen))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT {target} "
                f"DO UPDATE SET {adds}",
                [
                    value
                    for label in chosen
                    for value in (organization, project, day_value, person_id, label, *values)
                ],
            )


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
    """A save's activity: its labeling seconds and, when it submits, the submission — on the
    task's row and on the row of each label its shapes use. A class's labeling seconds are thus
    those of the saves whose shapes use it, each counted in full (a save with two classes counts
    toward both: per class they do not add up to the total, which only the task's row holds)."""
    labels = {shape["label"] for shape in shapes}
    credit(task, person_id, labels=labels, submitted=int(submit), lead_time=lead_time)


def credit_review(
    task: Task, reviewer_id: int, author_id: int | None, verdict: str, labels: Sequence[int]
) -> None:
    """A verdict's activity: one review given, to the reviewer; one approval or rejection, to
    the work's author; each on the task's row and on the row of each of ``labels`` (the classes
    of the annotation the verdict is on), so that a class filter keeps the reviews of its work."""
    credit(task, reviewer_id, labels=labels, reviews=1)
    approved = verdict == "approve"
    credit(task, author_id, labels=labels, approved=int(approved), rejected=int(not approved))


# ---------------------------------------------------------------------------- recount

RECOUNT_BATCH = 2000


def recount(project_id: int, *, batch: int = RECOUNT_BATCH) -> int:
    """Rebuild the per-task counters (label index with shapes and sizes, tags, shape counts) of a
    project's tasks from their current annotations, ``batch`` tasks a transaction; how many
    tasks were counted. Safe to run while people work: each batch locks its tasks."""
    done, after = 0, 0
    while True:
        with transaction.atomic():
            ids = list(
                Task.objects.filter(project_id=project_id, id__gt=after)
                .order_by("id")
                .values_list("id", flat=True)[:batch]
            )
            if not ids:
                rebuild_tally(project_id)
                return done
            after = ids[-1]
            tasks = {
                task.pk: task
                for task in Task.objects.select_for_update()
                .filter(pk__in=ids)
                .only("id", "project_id", "width", "height", "shape_count")
            }
            annotations = dict(
                (task_id, (shapes, tags))
                for task_id, shapes, tags in Annotation.objects.filter(task_id__in=ids).values_list(
                    "task_id", "shapes", "tags"
                )
            )
            _recount_batch(project_id, tasks, annotations)
            done += len(ids)


def rebuild_tally(project_id: int) -> None:
    """The project's tally counted again from its per-task counters (SQL aggregates)."""
    with transaction.atomic():
        Tally.objects.filter(project_id=project_id).delete()
        add_tally(project_id, tally_of(project_id))


def _recount_batch(
    project_id: int, tasks: dict[int, Task], annotations: dict[int, tuple[Any, Any]]
) -> None:
    ids = sorted(tasks)
    TaskLabel.objects.filter(task_id__in=ids).delete()
    TaskTag.objects.filter(task_id__in=ids).delete()
    labels: list[TaskLabel] = []
    tags: list[TaskTag] = []
    by_count: dict[int, list[int]] = {}
    for task_id in ids:
        task = tasks[task_id]
        shapes, names = annotations.get(task_id, ([], []))
        labels += label_rows(task_id, shapes or [], task.width, task.height)
        tags += tag_rows(task_id, project_id, names or [])
        if task.shape_count != len(shapes or []):
            by_count.setdefault(len(shapes or []), []).append(task_id)
    TaskLabel.objects.bulk_create(labels, batch_size=500)
    TaskTag.objects.bulk_create(tags, batch_size=500)
    for count, changed in by_count.items():
        Task.objects.filter(pk__in=changed).update(shape_count=count)
