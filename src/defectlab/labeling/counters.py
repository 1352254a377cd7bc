"""The stored counters behind project statistics (``defectlab.insight.statistics``), kept by the
same code that keeps the label index, in the same transaction:

* per task and label (``TaskLabel``): the label's shapes in the current annotation, and how many
  fall in each size bin — log10 of the shape's box area over the image's area, in half-decades
  from 10⁻⁶ (``SIZE_EDGES``; smaller ones count in the first bin) — or in ``size_unknown``
  while the image's size is not known (re-counted when ``labeling.sizes.note_size`` learns it);
* per task: ``Task.shape_count``, and its image tags (``TaskTag``, one row per tag);
* per project, UTC day, person and label (``Activity``): submissions, approvals and rejections
  (credited to the work's author), verdicts given (to the reviewer) and labeling seconds — kept
  and rebuilt by ``labeling.activity``;
* per project (``Tally``; ``TallySlice`` for the slices but all; ``add_tally``): each task's
  part — its labels' images, shapes and size bins, its tags, its shapes-per-image bin — per
  status, in slices (``task_slices``): all tasks, those of its assignee (or of nobody), and per
  label it uses, that label's and that label's with its assignee. Every path that changes a
  task's annotation, status or assignee moves its part (``TallyChange.task``, ``move_task``,
  ``moving``), so a statistics filter of statuses, a class and an assignee reads a few dozen
  rows at any size.

``recount`` rebuilds the per-task counters of a project from its annotations, in batches, then
its tally (``rebuild_tally``): the repair tool (``defectlab recount-statistics``); migration
0018 did the same for the data before the counters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models, transaction
from django.db.models import QuerySet, Sum

from defectlab.labeling.models import (
    Annotation,
    Project,
    Tally,
    TallyRow,
    TallySlice,
    Task,
    TaskLabel,
    TaskTag,
)

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
        before, status, assignee = task.shape_count, str(task.status), task.assignee_id
    else:
        before, status, assignee = Task.objects.values_list(
            "shape_count", "status", "assignee_id"
        ).get(pk=task.pk)
    after = str(becomes or status)
    stored = stored_counts(task.pk)
    counted = label_counts(shapes, task.width, task.height)
    if stored != counted:
        TaskLabel.objects.filter(task_id=task.pk).delete()
        TaskLabel.objects.bulk_create(label_rows(task.pk, shapes, task.width, task.height))
    names: list[str] = []
    wanted: list[str] = []
    # The tags count in every slice of the task: read when they or its slices may move.
    if tags is not None or after != status or set(stored) != set(counted):
        names = list(TaskTag.objects.filter(task_id=task.pk).values_list("name", flat=True))
        wanted = names if tags is None else list(dict.fromkeys(tags))
        if sorted(names) != sorted(wanted):
            TaskTag.objects.filter(task_id=task.pk).delete()
            TaskTag.objects.bulk_create(tag_rows(task.pk, task.project_id, wanted))
    change = TallyChange()
    change.task(status, assignee, stored, names, before, -1)
    change.task(after, assignee, counted, wanted, len(shapes), 1)
    task.shape_count = len(shapes)
    if write_count and before != len(shapes):
        Task.objects.filter(pk=task.pk).update(shape_count=len(shapes))
    if tally:
        add_tally(task.project_id, change)
    return change


def move_task(
    task: Task, status: str, assignee: int | None, *, was: tuple[str, int | None]
) -> list[int]:
    """Move ``task``'s part of its project's tally from its status and assignee before (``was``)
    to ``status`` and ``assignee`` (its label index and tags as stored, its shape count as on
    ``task``); the labels of its label index. Called by ``labeling.services.set_status``, with
    the project's row updated first."""
    counts = stored_counts(task.pk)
    names = list(TaskTag.objects.filter(task_id=task.pk).values_list("name", flat=True))
    change = TallyChange()
    change.task(was[0], was[1], counts, names, task.shape_count, -1)
    change.task(status, assignee, counts, names, task.shape_count, 1)
    add_tally(task.project_id, change)
    return sorted(counts)


def stored_counts(task_id: int) -> dict[int, LabelCounts]:
    """Label id → the task's counters as its label index stores them."""
    rows = TaskLabel.objects.filter(task_id=task_id)
    return {
        label: LabelCounts(found[0], list(found[1:-1]), found[-1])
        for label, *found in rows.values_list("label_id", "shapes", *SIZE_FIELDS, "size_unknown")
    }


def bucket(shape_count: int) -> str:
    """The shapes-per-image bin of a task with this many shapes."""
    return str(min(shape_count, SHAPES_CAP))


# ---------------------------------------------------------------------------- tally


def slice_key(label: int | None = None, person: int | None = None, *, nobody: bool = False) -> str:
    """The name of a tally slice: the tasks using ``label`` (None: any) and assigned to
    ``person`` (None: anyone), or to nobody — ``""``, ``"l3"``, ``"a7"``, ``"l3an"``. "Nobody"
    is a key of its own, which no id can make."""
    assigned = "an" if nobody else "" if person is None else f"a{person}"
    return ("" if label is None else f"l{label}") + assigned


def label_slices(label: int | None, assignee: int | None) -> tuple[str, str]:
    """The two slices of ``label`` (None: of all tasks) a task with this assignee counts in:
    anyone's, and its assignee's (or nobody's)."""
    return slice_key(label), slice_key(label, assignee, nobody=assignee is None)


def task_slices(labels: Iterable[int], assignee: int | None) -> list[str]:
    """The slices a task with these labels and this assignee counts in: all tasks, its
    assignee's (or nobody's), and for each label it uses, the label's and the label's with its
    assignee."""
    return [key for label in (None, *sorted(set(labels))) for key in label_slices(label, assignee)]


def tally_model(slice_: str) -> type[TallyRow]:
    """The table a slice's rows are in: ``Tally`` for all tasks, ``TallySlice`` for the others."""
    return TallySlice if slice_ else Tally


class TallyChange(Counter[tuple[str, str, str, str]]):
    """How a project's tally (``Tally``) moves: (slice, status, part, key) → how much."""

    def add(self, status: str, part: str, key: str, amount: int, slice_: str = "") -> None:
        self[(slice_, str(status), part, key)] += amount

    def labels(
        self, status: str, label: int, counts: LabelCounts, sign: int, *, slice_: str = ""
    ) -> None:
        """A label's images (one: one task), shapes and size bins."""
        status = str(status)
        self[(slice_, status, "images", str(label))] += sign
        self[(slice_, status, "shapes", str(label))] += sign * counts.shapes
        for index, number in enumerate(counts.sizes):
            if number:
                self[(slice_, status, "size", f"{label}:{index}")] += sign * number
        if counts.unknown:
            self[(slice_, status, "size", f"{label}:u")] += sign * counts.unknown

    def task(
        self,
        status: str,
        assignee: int | None,
        counts: Mapping[int, LabelCounts],
        tags: Iterable[str],
        shape_count: int,
        sign: int,
    ) -> None:
        """One task's whole part of the tally — its labels' counts, its tags and its shapes-per-
        image bin, in each of its slices (``task_slices``) — added (``sign`` 1) or taken away
        (-1)."""
        names = list(dict.fromkeys(tags))
        for slice_ in task_slices(counts, assignee):
            for label, found in counts.items():
                self.labels(status, label, found, sign, slice_=slice_)
            for name in names:
                self.add(status, "tag", name, sign, slice_)
            self.add(status, "per_image", bucket(shape_count), sign, slice_)


def add_tally(project_id: int, change: Mapping[tuple[str, str, str, str], int]) -> None:
    """Add ``change`` to the project's tally — the slice of all tasks in ``Tally``, the others in
    ``TallySlice`` — by ``INSERT … ON CONFLICT DO UPDATE`` statements adding to the rows, in
    (slice, status, part, key) order, so that people saving at once queue for each row in the
    same order (no deadlock) and no count is lost."""
    rows = sorted((*key, amount) for key, amount in change.items() if amount)
    if not rows:
        return
    # The project's row first (a no-op for a save, which locked it with its task): a new tally
    # row's foreign key check needs it, and taken after a tally row that made a deadlock with a
    # save holding the project and waiting for the row (image sizes learned, assignments).
    list(Project.objects.select_for_update().filter(pk=project_id).values_list("pk"))
    everything = [(project_id, *row[1:]) for row in rows if not row[0]]
    sliced = [(project_id, *row) for row in rows if row[0]]
    for model, keys, values in (
        (Tally, ("project_id", "status", "part", "key"), everything),
        (TallySlice, ("project_id", "slice", "status", "part", "key"), sliced),
    ):
        upsert_adding(model, (*keys, "count"), f"({', '.join(keys)})", ("count",), values)


def upsert_adding(
    model: type[models.Model],
    columns: Sequence[str],
    target: str,
    adding: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    batch: int = 300,
) -> None:
    """Insert ``rows`` (values of ``columns``) into ``model``'s table, ``batch`` a statement;
    where a row with the same ``target`` (an ``ON CONFLICT`` target) is there, add its
    ``adding`` columns to that row's instead. Concurrent writers lose no count (the tally, the
    daily activity)."""
    table = connection.ops.quote_name(model._meta.db_table)
    places = "(" + ", ".join(["%s"] * len(columns)) + ")"
    adds = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in adding)
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                f"{', '.join([places] * len(part))} ON CONFLICT {target} DO UPDATE SET {adds}",
                [value for row in part for value in row],
            )


def tally_tasks(project_id: int, slice_: str, statuses: Sequence[str] = ()) -> int:
    """How many of the project's tasks a slice holds (of ``statuses``; all: every status):
    the sum of its shapes-per-image rows."""
    rows: QuerySet[Any] = tally_model(slice_)._default_manager.filter(
        project_id=project_id, part="per_image"
    )
    if slice_:
        rows = rows.filter(slice=slice_)
    if statuses:
        rows = rows.filter(status__in=list(statuses))
    return int(rows.aggregate(n=Sum("count"))["n"] or 0)


TALLY_IDS = 5000  # task ids a query of ``tally_of`` names at most


def tally_of(project_id: int, task_ids: Sequence[int] | None = None) -> TallyChange:
    """The tally of a project's tasks (or of ``task_ids`` among them) counted from the per-task
    counters by SQL aggregates — per status, assignee and, for the label slices, each label a
    task uses — rolled up into the slices (for deletes, reassignments and ``recount``)."""
    change = TallyChange()
    if task_ids is None:
        _tally_rows(change, project_id, None)
    else:
        ids = sorted(set(task_ids))
        for start in range(0, len(ids), TALLY_IDS):
            _tally_rows(change, project_id, ids[start : start + TALLY_IDS])
    return change


def _tally_rows(change: TallyChange, project_id: int, ids: Sequence[int] | None) -> None:
    quote = connection.ops.quote_name
    task, label, tag = (quote(model._meta.db_table) for model in (Task, TaskLabel, TaskTag))
    sums = ", ".join(f"SUM(x.{name})" for name in ("shapes", *SIZE_FIELDS, "size_unknown"))
    parts = (  # (part, rows counted, the key they are grouped by, the aggregates)
        ("labels", f"{label} x", "x.label_id", f"COUNT(*), {sums}"),
        ("tag", f"{tag} x", "x.name", "COUNT(*)"),
        ("per_image", None, "t.shape_count", "COUNT(*)"),
    )
    where = "t.project_id = %s"
    if ids is not None:
        where += f" AND t.id IN ({', '.join(['%s'] * len(ids))})"
    for sliced in (False, True):
        for part, source, group, aggregates in parts:
            joins = f"{task} t" if source is None else f"{source} JOIN {task} t ON t.id = x.task_id"
            if sliced:
                joins += f" JOIN {label} s ON s.task_id = t.id"
            by = "t.status, t.assignee_id" + (", s.label_id" if sliced else "")
            slice_column = "s.label_id" if sliced else "NULL"
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT t.status, t.assignee_id, {slice_column}, {group}, {aggregates} "
                    f"FROM {joins} WHERE {where} GROUP BY {by}, {group}",
                    [project_id, *(ids or [])],
                )
                for status, assignee, sliced_label, key, number, *counts in cursor.fetchall():
                    for slice_ in label_slices(sliced_label, assignee):
                        _tally_row(change, slice_, status, part, key, number, counts)


def _tally_row(
    change: TallyChange,
    slice_: str,
    status: str,
    part: str,
    key: Any,
    number: int,
    counts: Sequence[int],
) -> None:
    if part == "labels":
        found = LabelCounts(int(counts[0]), [int(n) for n in counts[1:-1]], int(counts[-1]))
        change.labels(status, key, found, 1, slice_=slice_)
        change.add(status, "images", str(key), number - 1, slice_)
    elif part == "tag":
        change.add(status, "tag", key, number, slice_)
    else:
        change.add(status, "per_image", bucket(key), number, slice_)


@contextmanager
def moving(project_id: int, task_ids: Sequence[int]) -> Iterator[None]:
    """Around a change of these tasks' statuses or assignees in bulk (the tasks locked, in the
    caller's transaction): the project's tally moves by their part before and after."""
    before = tally_of(project_id, task_ids)
    yield
    after = tally_of(project_id, task_ids)
    after.subtract(before)
    add_tally(project_id, after)


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
                .order_by("id")  # in id order, as every other locker of many tasks
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
    """The project's tally counted again from its per-task counters (SQL aggregates), in every
    slice (``Project.tally_sliced`` then set). The project's row is locked first, as every save
    does before it adds to the tally: a save meanwhile adds its change after the rebuild."""
    with transaction.atomic():
        list(Project.objects.select_for_update().filter(pk=project_id).values_list("pk"))
        Tally.objects.filter(project_id=project_id).delete()
        TallySlice.objects.filter(project_id=project_id).delete()
        add_tally(project_id, tally_of(project_id))
        Project.objects.filter(pk=project_id).update(tally_sliced=True)


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
