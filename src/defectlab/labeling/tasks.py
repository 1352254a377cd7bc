"""One way to create tasks: `add_tasks` owns the rows and the project's stored counters.

Uploads, reference imports, dataset imports and storage sync each describe their tasks as plain
`NewTask` rows; `add_tasks` cuts the file name to the column, inserts the rows and moves the
counter of each status by how many rows it got, in one transaction. Nothing else creates tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from defectlab.labeling.models import Project, Task, TaskStatus

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
