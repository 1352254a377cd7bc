"""One way to create tasks: `add_tasks` owns the rows and the project's stored counters.

Uploads, reference imports, dataset imports and storage sync each describe their tasks as plain
`NewTask` rows; `add_tasks` cuts the file name to the column, inserts the rows and moves the
counter of each status by how many rows it got, in one transaction. Nothing else creates tasks.
`add_annotations` and `add_predictions` do the same for annotations (version 1, with their
history row and the task's label index, `label_links`) and predictions, in bulk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models, transaction
from django.db.models import F
from django.utils import timezone

from defectlab.labeling import queues
from defectlab.labeling.counters import (
    LABEL_COLUMNS,
    LabelCounts,
    TallyChange,
    add_tally,
    index_annotation,
    label_counts,
)
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Prediction,
    Project,
    Task,
    TaskLabel,
    TaskStatus,
    TaskTag,
)
from defectlab.labeling.signals import tasks_added

# The stored counter of each status on the project.
COUNTER = {
    TaskStatus.NEW: "count_new",
    TaskStatus.IN_PROGRESS: "count_in_progress",
    TaskStatus.SUBMITTED: "count_submitted",
    TaskStatus.APPROVED: "count_approved",
    TaskStatus.REJECTED: "count_rejected",
}


@dataclass(slots=True)
class NewTask:
    """A task to create: its image (a storage key, URL or bucket reference) and what is known
    about it."""

    image: str
    file_name: str
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None
    status: TaskStatus = TaskStatus.NEW
    has_annotation: bool = False
    has_prediction: bool = False
    shape_count: int = 0  # the shapes of the annotation its creator adds (insert_annotations)


def add_tasks(project: Project, rows: Sequence[NewTask], *, returning: bool = True) -> list[Task]:
    """Create one task per row in `project` and move its stored counters, atomically.

    With ``returning=False`` the rows go in by `insert_tasks` (one ``executemany``) and no task
    comes back (the list is empty): compiling Django's INSERT (15 fields a row, 66 rows a
    statement on SQLite) cost ~50 µs a task, most of a large reference import's time.
    """
    if not returning:
        insert_tasks(project, rows)
        return []
    project_id, organization_id = project.pk, project.organization_id
    if not rows:
        return []
    with transaction.atomic():
        created = Task.objects.bulk_create(
            [
                Task(
                    organization_id=organization_id,
                    project_id=project_id,
                    image=row.image,
                    file_name=row.file_name[-255:],
                    width=row.width,
                    height=row.height,
                    size_bytes=row.size_bytes,
                    status=row.status,
                    has_annotation=row.has_annotation,
                    has_prediction=row.has_prediction,
                    shape_count=row.shape_count,
                )
                for row in rows
            ],
            batch_size=500,
        )
        _count(project_id, rows)
        _added(project_id, [task.pk for task in created])
    return created


def insert_tasks(project: Project, rows: Sequence[NewTask]) -> list[int]:
    """Create one task per row in `project` by one ``executemany`` on ids reserved first
    (`reserve_ids`), and move its stored counters, atomically; the new tasks' ids, in the
    rows' order. Nothing is compiled per row: the path of every large import."""
    if not rows:
        return []
    project_id, organization_id = project.pk, project.organization_id
    with transaction.atomic():
        ids = reserve_ids(Task, len(rows))
        now = _now()
        _insert(
            Task,
            ("id", *_COLUMNS),
            [
                (
                    task_id,
                    organization_id,
                    project_id,
                    row.image,
                    row.file_name[-255:],
                    row.width,
                    row.height,
                    row.size_bytes,
                    row.status.value if isinstance(row.status, TaskStatus) else row.status,
                    row.has_annotation,
                    row.has_prediction,
                    row.shape_count,
                    now,
                    now,
                )
                for task_id, row in zip(ids, rows, strict=True)
            ],
        )
        _count(project_id, rows)
        _added(project_id, ids)
    return ids


def _added(project_id: int, ids: Sequence[int]) -> None:
    if ids:
        tasks_added.send(sender=Task, project_id=project_id, first=min(ids), last=max(ids))


def _count(project_id: int, rows: Sequence[NewTask]) -> None:
    # Counted as given ("new" and TaskStatus.NEW are one key), each status then named once.
    counts = Counter(row.status for row in rows)
    counters = {COUNTER[TaskStatus(status)]: number for status, number in counts.items()}
    Project.objects.filter(pk=project_id).update(
        **{counter: F(counter) + number for counter, number in counters.items()}
    )
    images = TallyChange()
    for row in rows:  # no label index yet, nor an assignee
        images.task(row.status, None, {}, [], row.shape_count, 1)
    add_tally(project_id, images)


_COLUMNS = (
    "organization",
    "project",
    "image",
    "file_name",
    "width",
    "height",
    "size_bytes",
    "status",
    "has_annotation",
    "has_prediction",
    "shape_count",
    "created_at",
    "updated_at",
)


def reserve_ids(model: type[models.Model], number: int) -> list[int]:
    """``number`` new primary keys of `model`'s table, increasing, that no other row can take:
    drawn from the sequence on PostgreSQL; on SQLite the next ones after the table's highest
    (the caller's transaction holds SQLite's write lock, taken by ``BEGIN IMMEDIATE``, so no
    other writer can come between; an explicit id moves AUTOINCREMENT's counter past it)."""
    if number <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, number],
            )
            return [row[0] for row in cursor.fetchall()]
        quote = connection.ops.quote_name
        cursor.execute(
            f"SELECT MAX(top) FROM (SELECT MAX(id) AS top FROM {quote(table)} UNION ALL "
            "SELECT seq FROM sqlite_sequence WHERE name = %s) AS tops",
            [table],
        )
        start = int(cursor.fetchone()[0] or 0) + 1
        return list(range(start, start + number))


# Rows per INSERT … unnest statement: a statement's arrays are built in full in the web
# process's memory (bench/memory.py: 100k tasks at once took the worker to 198 MiB)
PG_ROWS = 10_000


def _insert(
    model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """``rows`` (values of ``fields``, by field name) into `model`, all at once: on SQLite one
    ``executemany``; on PostgreSQL one ``INSERT … SELECT FROM unnest(<one array per column>)``,
    a single statement where psycopg's ``executemany`` would run one per row."""
    if not rows:
        return
    by_name = {field.name: field for field in model._meta.concrete_fields}
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({})".format(
        quote(model._meta.db_table), ", ".join(quote(str(by_name[name].column)) for name in fields)
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{_array_type(by_name[name])}[]" for name in fields)
            sql = f"{head} SELECT * FROM unnest({arrays})"
            for start in range(0, len(rows), PG_ROWS):
                part = rows[start : start + PG_ROWS]
                cursor.execute(sql, [list(column) for column in zip(*part, strict=True)])
        else:
            values = ", ".join(["%s"] * len(fields))
            cursor.executemany(f"{head} VALUES ({values})", rows)


def _array_type(field: models.Field[Any, Any]) -> str:
    """The column's type, for an array cast (a foreign key's is its target's)."""
    kind = str(field.db_type(connection))
    return {"serial": "integer", "bigserial": "bigint"}.get(kind, kind)


def _now() -> Any:
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _json(value: Any) -> Any:
    return connection.ops.adapt_json_value(value, None)


@dataclass(frozen=True)
class NewAnnotation:
    """The first version of a task's annotation; its shapes are checked already (as dicts)."""

    task: Task
    shapes: list[dict[str, Any]]
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NewPrediction:
    """A model's prediction for a task; its shapes are checked already (as dicts)."""

    task: Task
    model_name: str
    model_version: str
    shapes: list[dict[str, Any]]


def add_annotations(rows: Sequence[NewAnnotation], *, author_id: int | None) -> list[Annotation]:
    """Version 1 of each row's annotation by `author_id`, its history row and its task's label
    index, in bulk (`insert_annotations`). The tasks' status and ``has_annotation`` are their
    creator's (`add_tasks`)."""
    if not rows:
        return []
    ids = insert_annotations(
        [
            AnnotationRow(
                row.task.pk, row.task.organization_id, row.shapes, row.tags,
                row.task.width, row.task.height, row.task.project_id, row.task.status,
                row.task.assignee_id,
            )
            for row in rows
        ],
        author_id=author_id,
    )  # fmt: skip
    for row in rows:
        row.task.shape_count = len(row.shapes)
    return list(Annotation.objects.filter(pk__in=ids).order_by("id"))


@dataclass(frozen=True, slots=True)
class AnnotationRow:
    """`NewAnnotation` by the task's id: what a bulk import has in hand."""

    task_id: int
    organization_id: int
    shapes: list[dict[str, Any]]
    tags: list[str] = field(default_factory=list)
    width: int | None = None  # the task's image size, for the size counters
    height: int | None = None
    project_id: int = 0  # the task's project, for its tag rows
    status: str = TaskStatus.SUBMITTED  # the task's, for the project's tally
    assignee_id: int | None = None  # the task's, for the project's tally


def insert_annotations(
    rows: Sequence[AnnotationRow], *, author_id: int | None, counted_tasks: bool = False
) -> list[int]:
    """Version 1 of each row's annotation by `author_id` (its image tags without repeats), its
    history row, its task's label index with its counters (one row per label its shapes use,
    ``labeling.counters``) and tag rows, each table by one ``executemany``; the tasks' shape
    counts are set unless ``counted_tasks`` (the caller created them with it, ``NewTask``). The
    annotations' ids, in the rows' order."""
    if not rows:
        return []
    with transaction.atomic():
        ids = reserve_ids(Annotation, len(rows))
        now = _now()
        stored = [(_json(row.shapes), _json(list(dict.fromkeys(row.tags)))) for row in rows]
        _insert(
            Annotation,
            ("id", "organization", "task", "version", "shapes", "tags", "author", "lead_time",
             "created_at", "updated_at"),
            [
                (annotation_id, row.organization_id, row.task_id, 1, shapes, tags, author_id,
                 0.0, now, now)
                for annotation_id, row, (shapes, tags) in zip(ids, rows, stored, strict=True)
            ],
        )  # fmt: skip
        empty = _json([])
        _insert(
            AnnotationVersion,
            ("organization", "annotation", "version", "shapes", "tags", "author", "lead_time",
             "proposal_fates", "created_at"),
            [
                (row.organization_id, annotation_id, 1, shapes, tags, author_id, 0.0, empty, now)
                for annotation_id, row, (shapes, tags) in zip(ids, rows, stored, strict=True)
            ],
        )  # fmt: skip
        counted = [label_counts(row.shapes, row.width, row.height) for row in rows]
        _insert(
            TaskLabel,
            LABEL_COLUMNS,
            [
                values
                for row, counts in zip(rows, counted, strict=True)
                for values in _label_values(row.task_id, counts)
            ],
        )
        _insert(
            TaskTag,
            ("task", "project", "name"),
            [
                (row.task_id, row.project_id, name)
                for row in rows
                for name in dict.fromkeys(row.tags)
            ],
        )
        by_count: dict[int, list[int]] = {}
        for row in rows:
            if row.shapes:
                by_count.setdefault(len(row.shapes), []).append(row.task_id)
        if not counted_tasks:
            for count, task_ids in by_count.items():
                Task.objects.filter(pk__in=task_ids).update(shape_count=count)
        _tally_annotations(rows, counted, moved=not counted_tasks)
    return ids


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """`NewPrediction` by the task's id: what a bulk import has in hand."""

    task_id: int
    organization_id: int
    model_name: str
    model_version: str
    shapes: list[dict[str, Any]]
    source: str = ""  # Prediction.source


def add_predictions(rows: Sequence[NewPrediction]) -> list[Prediction]:
    """The rows' predictions in bulk (`insert_predictions`); their tasks are marked as having
    a prediction."""
    if not rows:
        return []
    ids = insert_predictions(
        [
            PredictionRow(
                row.task.pk, row.task.organization_id, row.model_name, row.model_version,
                row.shapes,
            )
            for row in rows
        ]
    )  # fmt: skip
    for row in rows:
        row.task.has_prediction = True
    return list(Prediction.objects.filter(pk__in=ids).order_by("id"))


def insert_predictions(rows: Sequence[PredictionRow], *, mark_tasks: bool = True) -> list[int]:
    """The rows' predictions by one ``executemany`` (model name and version trimmed to their
    columns), and their tasks marked as having a prediction (unless ``mark_tasks=False``: the
    caller created them marked, in its transaction) with their queue fields kept
    (`labeling.queues.refresh`); the predictions' ids, in the rows' order."""
    if not rows:
        return []
    with transaction.atomic():
        ids = reserve_ids(Prediction, len(rows))
        now = _now()
        _insert(
            Prediction,
            (
                "id",
                "organization",
                "task",
                "model_name",
                "model_version",
                "source",
                "shapes",
                "created_at",
            ),
            [
                (
                    prediction_id,
                    row.organization_id,
                    row.task_id,
                    row.model_name.strip()[:100],
                    row.model_version.strip()[:100],
                    row.source,
                    _json(row.shapes),
                    now,
                )
                for prediction_id, row in zip(ids, rows, strict=True)
            ],
        )
        if mark_tasks:
            Task.objects.filter(
                pk__in=sorted({row.task_id for row in rows}), has_prediction=False
            ).update(has_prediction=True)
        # Each task's newest prediction is its last row here (new ids are the highest).
        newest = {row.task_id: row.shapes for row in rows}
        queues.refresh(newest, newest=newest, lock=mark_tasks)
    return ids


def _label_values(task_id: int, counts: dict[int, LabelCounts]) -> list[tuple[int, ...]]:
    """A task's label index rows (``LABEL_COLUMNS``) from its label counts."""
    return [
        (task_id, label, counts[label].shapes, *counts[label].sizes, counts[label].unknown)
        for label in sorted(counts)
    ]


def _tally_annotations(
    rows: Sequence[AnnotationRow], counted: Sequence[dict[int, LabelCounts]], *, moved: bool
) -> None:
    """The projects' tallies moved by new annotations: each task's part from none (no labels,
    no tags, and a shape count of 0 when ``moved``, else the one it was made with) to its
    annotation's; one change per project."""
    changes: dict[int, TallyChange] = {}
    for row, counts in zip(rows, counted, strict=True):
        change = changes.setdefault(row.project_id, TallyChange())
        before = 0 if moved else len(row.shapes)
        change.task(row.status, row.assignee_id, {}, [], before, -1)
        change.task(row.status, row.assignee_id, counts, row.tags, len(row.shapes), 1)
    for project_id, change in sorted(changes.items()):
        add_tally(project_id, change)


def index_labels(
    task: Task,
    shapes: Sequence[dict[str, Any]],
    tags: Sequence[str] | None = None,
    *,
    write_count: bool = True,
    tally: bool = True,
    becomes: str | None = None,
) -> TallyChange:
    """Replace ``task``'s rows in the label filter's index, its statistics counters and (given
    ``tags``) its tag rows with those of an annotation with ``shapes`` (``labeling.counters``);
    the project's tally moves by the change (returned; ``tally=False``: the caller adds it)."""
    return index_annotation(
        task, shapes, tags, write_count=write_count, tally=tally, becomes=becomes,
        fresh=becomes is not None,
    )  # fmt: skip
