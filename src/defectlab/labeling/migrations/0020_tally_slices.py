"""The tally per class and assignee too (``Tally.slice``): the rows there are the slice of all
tasks (""). An existing project's class and assignee slices are not counted here — that reads
every task — but by ``defectlab recount-statistics``; until then ``Project.tally_sliced`` is off
and its filtered statistics sum the per-task counters, as before. New projects start sliced."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labeling", "0019_activity_nobody")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="tally_sliced",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AlterField(
            model_name="project",
            name="tally_sliced",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.RemoveConstraint(model_name="tally", name="tally_unique"),
        migrations.AddField(
            model_name="tally",
            name="slice",
            field=models.CharField(default="", max_length=40),
        ),
        migrations.AddConstraint(
            model_name="tally",
            constraint=models.UniqueConstraint(
                fields=("project", "slice", "status", "part", "key"), name="tally_slice_unique"
            ),
        ),
    ]
