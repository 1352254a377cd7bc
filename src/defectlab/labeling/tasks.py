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

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Prediction,
    Project,
    Task,
    TaskLabel,
    TaskStatus,
)

# The stored counter of each status on the project.
COUNTER = {
    TaskStatus.NEW: "count_new",
    TaskStatus.IN_PROGRESS: "count_in_progress",
    TaskStatus.SUBMITTED: "count_submitted",
    TaskStatus.APPROVED: "count_approved",
    TaskStatus.REJECTED: "count_rejected",
}


@dataclass(frozen=True)
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


def add_tasks(project: Project, rows: Sequence[NewTask], *, returning: bool = True) -> list[Task]:
    """Create one task per row in `project` and move its stored counters, atomically.

    With ``returning=False`` the rows go in by one ``executemany`` and no task comes back (the
    list is empty): compiling Django's INSERT (15 fields a row, 66 rows a statement on SQLite)
    cost ~50 µs a task, most of a large reference import's time.
    """
    project_id, organization_id = project.pk, project.organization_id
    if not rows:
        return []
    with transaction.atomic():
        if returning:
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
                    )
                    for row in rows
                ],
                batch_size=500,
            )
        else:
            created = []
            _insert_many(organization_id, project_id, rows)
        counts = Counter(TaskStatus(row.status) for row in rows)
        Project.objects.filter(pk=project_id).update(
            **{COUNTER[status]: F(COUNTER[status]) + number for status, number in counts.items()}
        )
    return created


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
    "created_at",
    "updated_at",
)


def _insert_many(organization_id: int, project_id: int, rows: Sequence[NewTask]) -> None:
    columns = {field.name: str(field.column) for field in Task._meta.concrete_fields}
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(Task._meta.db_table),
        ", ".join(quote(columns[name]) for name in _COLUMNS),
        ", ".join(["%s"] * len(_COLUMNS)),
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                (
                    organization_id,
                    project_id,
                    row.image,
                    row.file_name[-255:],
                    row.width,
                    row.height,
                    row.size_bytes,
                    TaskStatus(row.status).value,
                    row.has_annotation,
                    row.has_prediction,
                    now,
                    now,
                )
                for row in rows
            ],
        )


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


def label_links(task: Task, shapes: Sequence[dict[str, Any]]) -> list[TaskLabel]:
    """The label index of a task whose annotation has these shapes: one row per label used."""
    return [TaskLabel(task=task, label_id=label) for label in sorted({s["label"] for s in shapes})]


def add_annotations(rows: Sequence[NewAnnotation], *, author_id: int | None) -> list[Annotation]:
    """Version 1 of each row's annotation by `author_id`, its history row and its task's label
    index, in bulk. The tasks' status and ``has_annotation`` are their creator's (`add_tasks`)."""
    annotations = [
        Annotation(
            organization_id=row.task.organization_id,
            task=row.task,
            version=1,
            shapes=row.shapes,
            tags=list(dict.fromkeys(row.tags)),
            author_id=author_id,
        )
        for row in rows
    ]
    with transaction.atomic():
        Annotation.objects.bulk_create(annotations, batch_size=500)
        AnnotationVersion.objects.bulk_create(
            [
                AnnotationVersion(
                    organization_id=annotation.organization_id,
                    annotation=annotation,
                    version=1,
                    shapes=annotation.shapes,
                    tags=annotation.tags,
                    author_id=author_id,
                )
                for annotation in annotations
            ],
            batch_size=500,
        )
        TaskLabel.objects.bulk_create(
            [link for row in rows for link in label_links(row.task, row.shapes)], batch_size=1000
        )
    return annotations


def add_predictions(rows: Sequence[NewPrediction]) -> list[Prediction]:
    """The rows' predictions in bulk (model name and version trimmed to their columns); their
    tasks are marked as having a prediction."""
    predictions = [
        Prediction(
            organization_id=row.task.organization_id,
            task=row.task,
            model_name=row.model_name.strip()[:100],
            model_version=row.model_version.strip()[:100],
            shapes=row.shapes,
        )
        for row in rows
    ]
    with transaction.atomic():
        Prediction.objects.bulk_create(predictions, batch_size=500)
        Task.objects.filter(pk__in=[row.task.pk for row in rows], has_prediction=False).update(
            has_prediction=True
        )
    for row in rows:
        row.task.has_prediction = True
    return predictions


def index_labels(task: Task, shapes: Sequence[dict[str, Any]]) -> None:
    """Replace ``task``'s rows in the label filter's index with those of ``shapes``."""
    TaskLabel.objects.filter(task=task).delete()
    TaskLabel.objects.bulk_create(label_links(task, shapes))
