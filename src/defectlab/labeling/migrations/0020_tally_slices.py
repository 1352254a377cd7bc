"""The tally per class and assignee too (``TallySlice``), in a table of its own: the release
before it keeps saving into ``Tally`` while a rolling upgrade runs. An existing project's slices
are not counted here — that reads every task — but by ``defectlab recount-statistics``; until
then ``Project.tally_sliced`` is off and its class and assignee filters sum the per-task
counters, as before. New projects start sliced; one the release before makes while a rolling
upgrade runs gets the database's default, not sliced."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labeling", "0019_activity_nobody")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="tally_sliced",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AlterField(
            model_name="project",
            name="tally_sliced",
            field=models.BooleanField(db_default=False, default=True, editable=False),
        ),
        migrations.CreateModel(
            name="TallySlice",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("slice", models.CharField(max_length=40)),
                ("status", models.CharField(max_length=16)),
                ("part", models.CharField(max_length=12)),
                ("key", models.CharField(max_length=64)),
                ("count", models.BigIntegerField(default=0)),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="labeling.project",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "slice", "status", "part", "key"),
                        name="tally_slice_unique",
                    )
                ],
            },
        ),
    ]
