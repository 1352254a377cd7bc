"""The statistics counters of existing annotations (0017 made their columns and tables).

Not atomic: a migration's one transaction would hold the task table (0017's new columns lock
it) for the whole backfill, and every reader waits — minutes at a million tasks. Here each batch
of ``BATCH`` annotations is a transaction of its own with its tasks' rows locked (a save of one
of them waits for it, the rest of the table stays free): the label index rows again with their
shape and size counts, the tag rows, the tasks' shape counts. Then each project's tally, in a
transaction of its own, counted from those rows. Activity (history) starts from now. The rules
that turn shapes into counts are ``labeling.counters``' (one home; they are pure functions of
the shapes and the image size)."""

from collections import Counter

from django.db import migrations, transaction
from django.db.models import Count, Sum

from defectlab.labeling.counters import (
    LABEL_COLUMNS,
    SIZE_FIELDS,
    bucket,
    label_values,
)

BATCH = 2000
FIELDS = [f"{c}_id" if c in ("task", "label") else c for c in LABEL_COLUMNS]


def backfill(apps, schema_editor):
    alias = schema_editor.connection.alias
    Annotation = apps.get_model("labeling", "Annotation")
    Task = apps.get_model("labeling", "Task")
    after = 0
    while True:
        with transaction.atomic(using=alias):
            batch = list(
                Annotation.objects.using(alias)
                .filter(id__gt=after)
                .order_by("id")
                .values_list("id", "task_id")[:BATCH]
            )
            if not batch:
                break
            after = batch[-1][0]
            task_ids = [task_id for _id, task_id in batch]
            locked = Task.objects.using(alias).select_for_update().filter(pk__in=task_ids)
            list(locked.order_by("pk").values_list("pk", flat=True))
            count_batch(apps, alias, task_ids)
    projects = Task.objects.using(alias).order_by().values_list("project_id", flat=True)
    for project_id in sorted(set(projects.distinct())):
        with transaction.atomic(using=alias):
            tally(apps, alias, project_id)


def count_batch(apps, alias, task_ids):
    """The per-task counters of these (locked) tasks, from their annotations as they are now."""
    Annotation = apps.get_model("labeling", "Annotation")
    Task = apps.get_model("labeling", "Task")
    TaskLabel = apps.get_model("labeling", "TaskLabel")
    TaskTag = apps.get_model("labeling", "TaskTag")
    rows = list(
        Annotation.objects.using(alias)
        .filter(task_id__in=task_ids)
        .values_list("task_id", "shapes", "tags", "task__width", "task__height", "task__project_id")
    )
    TaskLabel.objects.using(alias).filter(task_id__in=task_ids).delete()
    TaskTag.objects.using(alias).filter(task_id__in=task_ids).delete()
    TaskLabel.objects.using(alias).bulk_create(
        TaskLabel(**dict(zip(FIELDS, values, strict=True)))
        for task_id, shapes, _tags, width, height, _project in rows
        for values in label_values(task_id, shapes or [], width, height)
    )
    TaskTag.objects.using(alias).bulk_create(
        TaskTag(task_id=task_id, project_id=project_id, name=str(name)[:50])
        for task_id, _shapes, tags, _w, _h, project_id in rows
        for name in dict.fromkeys(tags or [])
    )
    by_count: dict[int, list[int]] = {}
    for task_id, shapes, *_rest in rows:
        by_count.setdefault(len(shapes or []), []).append(task_id)
    for count, ids in by_count.items():
        Task.objects.using(alias).filter(pk__in=ids).update(shape_count=count)


def tally(apps, alias, project_id):
    """The project's tally, counted again from its per-task counters (SQL aggregates)."""
    Task = apps.get_model("labeling", "Task")
    TaskLabel = apps.get_model("labeling", "TaskLabel")
    TaskTag = apps.get_model("labeling", "TaskTag")
    Tally = apps.get_model("labeling", "Tally")
    # The tally as this migration made it, keyed (status, part, key): its own code, not
    # labeling.counters' (whose tally later grew slices this schema does not have yet).
    change: Counter = Counter()
    sums = {name: Sum(name) for name in ("shapes", *SIZE_FIELDS, "size_unknown")}
    grouped = (
        TaskLabel.objects.using(alias)
        .filter(task__project_id=project_id)
        .values("task__status", "label_id")
    )
    for row in grouped.annotate(n=Count("id"), **sums).order_by():
        status, label = row["task__status"], row["label_id"]
        change[(status, "images", str(label))] += row["n"]
        change[(status, "shapes", str(label))] += row["shapes"]
        for index, name in enumerate(SIZE_FIELDS):
            if row[name]:
                change[(status, "size", f"{label}:{index}")] += row[name]
        if row["size_unknown"]:
            change[(status, "size", f"{label}:u")] += row["size_unknown"]
    tags = (
        TaskTag.objects.using(alias)
        .filter(project_id=project_id)
        .values_list("task__status", "name")
    )
    for status, name, n in tags.annotate(n=Count("id")).order_by():
        change[(status, "tag", name)] += n
    tasks = Task.objects.using(alias).filter(project_id=project_id)
    for status, count, n in (
        tasks.values_list("status", "shape_count").annotate(n=Count("id")).order_by()
    ):
        change[(status, "per_image", bucket(count))] += n
    Tally.objects.using(alias).filter(project_id=project_id).delete()
    Tally.objects.using(alias).bulk_create(
        (
            Tally(project_id=project_id, status=status, part=part, key=key, count=number)
            for (status, part, key), number in change.items()
            if number
        ),
        batch_size=500,
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("labeling", "0017_statistics")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
