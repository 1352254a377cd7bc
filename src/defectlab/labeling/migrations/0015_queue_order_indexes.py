"""The indexes of the queue orders (labeling.queues), built without blocking writes: on
PostgreSQL with CREATE INDEX CONCURRENTLY (outside a transaction, so the migration is not
atomic), elsewhere (SQLite) as usual. The model state is the same either way."""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.migrations.operations import AddIndex


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """`AddIndexConcurrently` on PostgreSQL, a plain `AddIndex` on other databases. An index left
    invalid by an interrupted earlier run is dropped first, so running again finishes the job."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %s AND NOT i.indisvalid",
                [self.index.name],
            )
            invalid = cursor.fetchone() is not None
        if invalid:
            schema_editor.execute(
                f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}"
            )
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
            return
        super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("labeling", "0014_queue_order"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="task",
            index=models.Index(
                condition=models.Q(("status", "submitted"), ("top_score__isnull", False)),
                fields=["project", "top_score", "id"],
                name="task_queue_top_score",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="task",
            index=models.Index(
                condition=models.Q(
                    ("status__in", ["new", "in_progress"]), ("top_score__isnull", False)
                ),
                fields=["project", "top_score", "id"],
                name="task_queue_open_top_score",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="task",
            index=models.Index(
                condition=models.Q(("disagreement__isnull", False), ("status", "submitted")),
                fields=["project", "-disagreement", "id"],
                name="task_queue_disagreement",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="task",
            index=models.Index(
                condition=models.Q(
                    ("disagreement__isnull", False), ("status__in", ["new", "in_progress"])
                ),
                fields=["project", "-disagreement", "id"],
                name="task_queue_open_disagreement",
            ),
        ),
    ]
