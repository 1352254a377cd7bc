# Tasks, annotations, their versions and predictions keep only the indexes their lookups use: each
# one is paid for row by row by a bulk import (bench/tasks.py). The single-column indexes on
# organization go (every query of these names a project, a task, an annotation or ids; deleting an
# organization may scan), as does the one on a version's annotation (annotation_version_unique
# leads with it); those on a task's three people's keys become partial, on the rows that name
# someone: an imported task names nobody, and a user's deletion (SET NULL) still finds theirs.
#
# A plain DROP INDEX on both databases, as in 0011 (AlterField(db_index=False) would copy the
# table on SQLite and leave the index on PostgreSQL).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

INDEXES = [
    ("labeling_task", "labeling_task_organization_id_42235e9e", "organization_id"),
    ("labeling_task", "labeling_task_assignee_id_b2fe9dc2", "assignee_id"),
    ("labeling_task", "labeling_task_lock_owner_id_5eefbfcd", "lock_owner_id"),
    ("labeling_task", "labeling_task_submitted_by_id_4fd2ec2a", "submitted_by_id"),
    ("labeling_annotation", "labeling_annotation_organization_id_119a49d6", "organization_id"),
    (
        "labeling_annotationversion",
        "labeling_annotationversion_organization_id_29f61d1e",
        "organization_id",
    ),
    (
        "labeling_annotationversion",
        "labeling_annotationversion_annotation_id_5fd8c1e6",
        "annotation_id",
    ),
    ("labeling_prediction", "labeling_prediction_organization_id_87804840", "organization_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0011_drop_indexes_covered_by_project_and_label_keys"),
        ("tenancy", "0002_verbose_names"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="task",
                    name="assignee",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="assignee",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="lock_owner",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="reserved for",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenancy.organization",
                        verbose_name="organization",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="submitted_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="submitted by",
                    ),
                ),
                migrations.AlterField(
                    model_name="annotation",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenancy.organization",
                    ),
                ),
                migrations.AlterField(
                    model_name="annotationversion",
                    name="annotation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="labeling.annotation",
                    ),
                ),
                migrations.AlterField(
                    model_name="annotationversion",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenancy.organization",
                    ),
                ),
                migrations.AlterField(
                    model_name="prediction",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenancy.organization",
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
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("assignee__isnull", False)),
                fields=["assignee"],
                name="task_assignee",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("lock_owner__isnull", False)),
                fields=["lock_owner"],
                name="task_lock_owner",
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                condition=models.Q(("submitted_by__isnull", False)),
                fields=["submitted_by"],
                name="task_submitted_by",
            ),
        ),
    ]
