# Drops the single-column indexes on Task.project and TaskLabel.label: task_project (project, id)
# and task_label_unique (label, task) lead with the same columns and serve every lookup (foreign
# keys and cascades included); the extra ones only offered PostgreSQL plans that read a whole
# project (or label) and sort it.
#
# A plain DROP INDEX on both databases. Letting AlterField(db_index=False) do it would, on
# PostgreSQL, drop and re-add the foreign-key constraint (a scan of the whole task table to check
# it) and, on SQLite, copy the table. Dropping an index is quick, so no CONCURRENTLY (which would
# need a non-atomic migration); it holds the table's lock for that moment only.

import django.db.models.deletion
from django.db import migrations, models

INDEXES = [
    ("labeling_task", "labeling_task_project_id_89b7302a", "project_id"),
    ("labeling_tasklabel", "labeling_tasklabel_label_id_ecb8a8a2", "label_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0010_issues"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="task",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tasks",
                        to="labeling.project",
                        verbose_name="project",
                    ),
                ),
                migrations.AlterField(
                    model_name="tasklabel",
                    name="label",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="labeling.label",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX "{index}" ON "{table}" ("{column}")',
                )
                for table, index, column in INDEXES
            ],
        ),
    ]
