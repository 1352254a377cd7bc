# UrlImportItem comes from the ingest app with its table (see ingest 0003): state only.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("ingest", "0003_url_import_items_to_transfer"),
        ("jobs", "0002_workerheartbeat"),
        ("labeling", "0005_review_rules"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="UrlImportItem",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("index", models.IntegerField()),
                        ("url", models.TextField()),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("pending", "Waiting"),
                                    ("done", "Imported"),
                                    ("failed", "Failed"),
                                ],
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("error", models.TextField(blank=True)),
                        ("rule", models.CharField(blank=True, max_length=32)),
                        (
                            "job",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="url_items",
                                to="jobs.job",
                            ),
                        ),
                        (
                            "organization",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="tenancy.organization",
                            ),
                        ),
                        (
                            "task",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="labeling.task",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "ingest_urlimportitem",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("job", "index"), name="one_url_import_item_per_index"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
