"""Migrations 0017 and 0018 (the backfill, batch by batch) on an installation with annotations: the label index rows get their shape
and size counts, tags their rows, tasks their shape counts, and each project its tally, equal
to what the product's own paths would have stored (``counters.recount``)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from defectlab.labeling.counters import recount, tally_of
from defectlab.labeling.models import Project as ProjectNow
from defectlab.labeling.models import Tally, TallySlice, Task, TaskLabel, TaskTag
from tests.insight.tally import recounted_tally, stored_tally

BEFORE = [("labeling", "0016_queue_order_backfill")]


def state() -> dict[str, object]:
    return {
        "labels": sorted(
            TaskLabel.objects.values_list("task_id", "label_id", "shapes", "size_6", "size_unknown")
        ),
        "tags": sorted(TaskTag.objects.values_list("task_id", "project_id", "name")),
        "counts": sorted(Task.objects.values_list("id", "shape_count")),
        "tally": sorted(
            Tally.objects.filter(count__gt=0).values_list(
                "project_id", "status", "part", "key", "count"
            )
        ),
    }


@pytest.mark.django_db(transaction=True)
def test_the_statistics_migrations_count_what_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    backfill = importlib.import_module("defectlab.labeling.migrations.0018_statistics_backfill")
    monkeypatch.setattr(backfill, "BATCH", 2)  # several batches, each its own transaction
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    organization = old.get_model("tenancy", "Organization").objects.create(name="Old")
    project = old.get_model("labeling", "Project").objects.create(
        organization=organization, name="P", tags=[{"name": "NG", "color": "#757575"}]
    )
    Label = old.get_model("labeling", "Label")
    scratch = Label.objects.create(organization=organization, project=project, name="scratch")
    dent = Label.objects.create(organization=organization, project=project, name="dent")
    Task = old.get_model("labeling", "Task")
    Annotation = old.get_model("labeling", "Annotation")
    OldTaskLabel = old.get_model("labeling", "TaskLabel")

    def shape(label: int, size: float) -> dict[str, object]:
        return {"type": "box", "points": [[0, 0], [size, size]], "label": label, "attributes": {}}

    for index in range(7):
        sized = index % 3 != 0
        task = Task.objects.create(
            organization=organization, project=project, image=f"https://x.test/{index}.png",
            file_name=f"{index}.png", width=100 if sized else None, height=100 if sized else None,
            status="submitted" if index % 2 else "approved", has_annotation=index != 6,
        )  # fmt: skip
        if index == 6:
            continue  # a task without an annotation
        shapes = [shape(scratch.pk, 5)] * (index % 4) + [shape(dent.pk, 30)]
        Annotation.objects.create(
            organization=organization, task=task, shapes=shapes, tags=["NG"] if index % 2 else []
        )
        for label in sorted({s["label"] for s in shapes}):
            OldTaskLabel.objects.create(task=task, label_id=label)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = state()
    assert migrated["counts"] and any(count for _id, count in migrated["counts"])
    # 0018 counted the slice of all tasks; 0020 leaves the class and assignee slices to
    # `recount-statistics`, the project marked as not sliced meanwhile.
    everything = {key[1:]: n for key, n in tally_of(project.pk).items() if n and not key[0]}
    assert {tuple(key): n for _p, *key, n in migrated["tally"]} == everything
    assert not ProjectNow.objects.get(pk=project.pk).tally_sliced
    assert not TallySlice.objects.exists()
    recount(project.pk)
    assert ProjectNow.objects.get(pk=project.pk).tally_sliced
    assert state() == migrated
    assert stored_tally(project.pk) == recounted_tally(project.pk)
    assert TallySlice.objects.exists()
