"""The queue fields of a task and the orders of "next" (``workflow.next_task``, ``next_review``).

Each task keeps two numbers taken from its **newest prediction** (the Prediction row with the
highest id: the one written last, whatever made it):

* ``top_score`` — the highest score among that prediction's shapes. A shape without a score
  (an imported prediction that carried none) counts as 1.0: the model stated it without doubt.
  A prediction with no shapes counts as 1.0 too (`EMPTY_TOP_SCORE`): the model is sure there is
  nothing to see (pre-annotation stores one for every clean image), so in uncertainty order it
  comes after every task with a less certain shape, with the certain ones, in id order, and
  before the tasks with no prediction. Null when the task has no prediction.
* ``disagreement`` — `evaluation.disagreement` between the current annotation's boxes and that
  prediction's boxes (0 agree … 1 disagree), with ``conf=0``: the stored shapes are already
  those the model kept at its threshold of the time. Polygons count by their bounding box;
  points shapes are left out (they have no area to overlap). Null when either side is missing,
  and for an **empty draft**: an annotation without shapes on a task still open (new or in
  progress) is work not done yet, not a statement that the image is clean, so it waits with the
  new work (in id order) instead of coming first as a full disagreement. Once submitted, an
  empty annotation says "no defect" and disagrees fully (1.0) with a prediction that has one:
  the first thing a reviewer should see. (A task moves between open and not open only by a save,
  which recomputes the value.) So disagreement ranks work that has an annotation: submitted work
  for review, drafts with shapes and rejected work for labeling.

They are kept where predictions and annotations are written: `refresh` after every insert of
predictions (``labeling.tasks.insert_predictions``, the one way they are written: the API, the
canvas's model, pre-annotation jobs and backends, imports) and after predictions are removed
(pre-annotation replacing a prediction removes the old row in the same transaction, then
inserts); `on_saved` when an annotation is saved (one query, only on a task with a
prediction).

A project's ``queue_order`` orders each queue of "next": by age (id), by uncertainty (lowest top
score first; tasks without a prediction after those with one, in id order) or by disagreement
(largest first; tasks without one after, in id order). `parts` splits a queue into the ordered
querysets `workflow._reserve` walks in turn, each served by an index of ``Task``
(``task_queue_top_score``, ``task_queue_disagreement``; bench/queues.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, ExpressionWrapper, F, FloatField, OuterRef, QuerySet

from defectlab.evaluation import Box, disagreement
from defectlab.geometry import ShapeType
from defectlab.labeling.models import (
    Annotation,
    Prediction,
    Project,
    QueueOrder,
    SkippedTask,
    Task,
    TaskStatus,
)
from defectlab.tenancy.models import User

# Tasks read and written per round of `refresh` (migration 0016 keeps its own copy).
BATCH = 1000

# The statuses of open work: what "next task" hands out, where an empty annotation is a draft.
OPEN_WORK = (TaskStatus.NEW, TaskStatus.IN_PROGRESS)

# The top score of a prediction without shapes: certain (see the module docstring).
EMPTY_TOP_SCORE = 1.0

Values = tuple[float | None, float | None]


def _boxes(shapes: Iterable[Mapping[str, Any]], *, scored: bool) -> list[Box]:
    """The boxes of stored shapes: what `evaluation.shape_box` makes of each (a polygon's
    bounding box), read straight from the JSON (stored shapes were checked when written, and
    checking them again as `Shape`s was half of an import's cost here). Points shapes and
    shapes without area are left out; a row that does not read is skipped, never an error."""
    boxes = []
    for data in shapes:
        try:
            if data.get("type") == ShapeType.POINTS:
                continue
            xs = [float(point[0]) for point in data["points"]]
            ys = [float(point[1]) for point in data["points"]]
            score = data.get("score") if scored else None
            box = Box(min(xs), min(ys), max(xs), max(ys), int(data["label"]),
                      1.0 if score is None else float(score))  # fmt: skip
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            continue
        if box.x2 > box.x1 and box.y2 > box.y1:
            boxes.append(box)
    return boxes


def top_score_of(prediction: Sequence[Mapping[str, Any]] | None) -> float | None:
    """The top score of a stored prediction's shapes (see the module docstring)."""
    if prediction is None:
        return None
    scores = [
        1.0 if shape.get("score") is None else float(shape["score"])
        for shape in prediction
        if isinstance(shape, Mapping)
    ]
    return max(scores, default=EMPTY_TOP_SCORE)


def disagreement_of(
    annotation: Sequence[Mapping[str, Any]] | None,
    prediction: Sequence[Mapping[str, Any]] | None,
    status: str | None = None,
) -> float | None:
    """How much a stored prediction disagrees with a stored annotation on a task in ``status``;
    None without either, and for an empty draft (see the module docstring)."""
    if annotation is None or prediction is None:
        return None
    if not annotation and status in OPEN_WORK:
        return None
    truths = _boxes(annotation, scored=False)
    predicted = _boxes(prediction, scored=True)
    if not truths or not predicted:  # nothing can match: all disagree, or neither has a box
        return 1.0 if truths or predicted else 0.0
    return float(disagreement(truths, predicted, conf=0.0))


def values_of(
    annotation: Sequence[Mapping[str, Any]] | None,
    prediction: Sequence[Mapping[str, Any]] | None,
    status: str | None = None,
) -> Values:
    """(top_score, disagreement) of a task in ``status`` from its current annotation's and
    newest prediction's stored shapes (None where there is none)."""
    return top_score_of(prediction), disagreement_of(annotation, prediction, status)


def _annotations(task_ids: Sequence[int]) -> dict[int, tuple[Any, str]]:
    """The stored shapes of the annotations of ``task_ids`` and their tasks' statuses."""
    rows = Annotation.objects.filter(task_id__in=task_ids)
    return {task_id: (shapes, status) for task_id, shapes, status in
            rows.values_list("task_id", "shapes", "task__status")}  # fmt: skip


def _values(annotation: tuple[Any, str] | None, prediction: Any) -> Values:
    shapes, status = annotation if annotation is not None else (None, None)
    return values_of(shapes, prediction, status)


def compute(task_ids: Sequence[int]) -> dict[int, Values]:
    """The values of ``task_ids`` recomputed from what is stored (two queries)."""
    newest: dict[int, Any] = {}
    rows = Prediction.objects.filter(task_id__in=task_ids).order_by("task_id", "-id")
    for task_id, shapes in rows.values_list("task_id", "shapes"):
        newest.setdefault(task_id, shapes)
    annotations = _annotations(task_ids)
    return {task_id: _values(annotations.get(task_id), newest.get(task_id)) for task_id in task_ids}


def refresh(
    task_ids: Iterable[int],
    *,
    newest: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    lock: bool = True,
) -> None:
    """Recompute and store the values of ``task_ids``, in rounds of `BATCH` tasks.

    ``newest``: the shapes of each task's newest prediction when the caller has just written
    them (only the annotations are read then). ``lock``: lock the tasks' rows first, as an
    annotation's save does, so a save landing meanwhile is either seen here or sees the new
    prediction (off for tasks created in the caller's transaction: nobody else sees them)."""
    ordered = sorted(set(task_ids))
    for start in range(0, len(ordered), BATCH):
        part = ordered[start : start + BATCH]
        with transaction.atomic():
            if lock:
                list(Task.objects.select_for_update().filter(pk__in=part).values_list("pk"))
            if newest is None:
                values = compute(part)
            else:
                annotations = _annotations(part)
                values = {
                    task_id: _values(annotations.get(task_id), newest.get(task_id))
                    for task_id in part
                }
            write(values)


def write(values: Mapping[int, Values]) -> None:
    """Store (top_score, disagreement) of each task id in one statement (``updated_at`` is not
    touched: these follow the model, not the work)."""
    if not values:
        return
    table = connection.ops.quote_name(Task._meta.db_table)
    rows = [(top, spread, task_id) for task_id, (top, spread) in values.items()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ids, tops, spreads = ([row[i] for row in rows] for i in (2, 0, 1))
            cursor.execute(
                f"UPDATE {table} AS t SET top_score = v.top, disagreement = v.spread "
                "FROM unnest(%s::bigint[], %s::float8[], %s::float8[]) AS v(id, top, spread) "
                "WHERE t.id = v.id",
                [ids, tops, spreads],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET top_score = %s, disagreement = %s WHERE id = %s", rows
            )


def on_saved(task: Task, shapes: Sequence[Mapping[str, Any]]) -> list[str]:
    """After ``task``'s annotation became ``shapes`` (inside the save's transaction, the task
    locked): set its disagreement and name the field to save; nothing (no query) on a task
    without a prediction."""
    if not task.has_prediction:
        return []
    prediction = (
        Prediction.objects.filter(task_id=task.pk)
        .order_by("-id")
        .values_list("shapes", flat=True)
        .first()
    )
    task.disagreement = disagreement_of(shapes, prediction, task.status)
    return ["disagreement"]


def _in_statuses(tasks: QuerySet[Task], statuses: Sequence[str]) -> QuerySet[Task]:
    """Those of ``tasks`` in ``statuses``. On SQLite the statuses are also written out as
    literals, the one form SQLite matches to a partial index on the status (``task_queue_*``; a
    bound parameter never matches a partial index)."""
    tasks = tasks.filter(status__in=statuses)
    if connection.vendor == "sqlite":
        # Written as the index's condition is (one status: "=", SQLite does not read "IN" then).
        literals = [f"'{TaskStatus(status).value}'" for status in statuses]
        condition = f"= {literals[0]}" if len(literals) == 1 else f"IN ({', '.join(literals)})"
        tasks = tasks.extra(where=[f'"labeling_task"."status" {condition}'])
    return tasks


def open_work(tasks: QuerySet[Task]) -> QuerySet[Task]:
    """Those of ``tasks`` new or in progress: the open work "next task" hands out (read through
    the partial indexes ``task_queue_open_*``)."""
    return _in_statuses(tasks, OPEN_WORK)


def in_review(tasks: QuerySet[Task]) -> QuerySet[Task]:
    """Those of ``tasks`` submitted: the work "next review" hands out (read through the partial
    indexes ``task_queue_top_score`` and ``task_queue_disagreement``)."""
    return _in_statuses(tasks, [TaskStatus.SUBMITTED])


@dataclass(frozen=True)
class Queue:
    """One queue of "next": its tasks, and whether they are one person's (assigned to them, or
    their own submissions): few of many, found by that person's index, never by walking the
    project's tasks in score order (``parts``)."""

    tasks: QuerySet[Task]
    own: bool = False


def parts(queue: QuerySet[Task], order: str, *, own: bool = False) -> list[QuerySet[Task]]:
    """``queue`` as the querysets "next" walks in turn, in ``order`` (a ``QueueOrder``): those
    with the value first (by it, then id), then those without (by id). For ``own`` queues the
    value is read as an expression, which no index gives, so the database finds the person's
    few tasks by their index and sorts them (SQLite, without statistics, would otherwise walk the
    project's score index to find them)."""
    field = {QueueOrder.UNCERTAINTY: "top_score", QueueOrder.DISAGREEMENT: "disagreement"}.get(
        QueueOrder(order) if order in QueueOrder.values else QueueOrder.AGE
    )
    if field is None:
        return [queue.order_by("id")]
    if own:  # an expression, so neither the filter nor the order can lead to a score index
        queue = queue.alias(queue_key=ExpressionWrapper(F(field) + 0.0, output_field=FloatField()))
        field = "queue_key"
    key = F(field).desc() if order == QueueOrder.DISAGREEMENT else F(field).asc()
    return [
        queue.filter(**{f"{field}__isnull": False}).order_by(key, "id"),
        queue.filter(**{f"{field}__isnull": True}).order_by("id"),
    ]


def not_skipped(tasks: QuerySet[Task], user: User) -> QuerySet[Task]:
    return tasks.exclude(Exists(SkippedTask.objects.filter(task=OuterRef("pk"), user=user)))


def in_order(queues: list[Queue], user: User, project: Project) -> list[QuerySet[Task]]:
    """The querysets "next" walks: ``queues`` without the tasks ``user`` skipped, each in the
    project's queue order (``parts``), then the same queues holding only those, the
    longest-skipped first: skipping every task in turn goes round them all, and when only
    skipped tasks are left, "next" hands them out again rather than saying nothing is left."""
    order = project.queue_order
    return [
        part
        for queue in queues
        for part in parts(not_skipped(queue.tasks, user), order, own=queue.own)
    ] + [queue.tasks.filter(skips__user=user).order_by("skips__id") for queue in queues]
