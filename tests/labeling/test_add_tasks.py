"""One way to create tasks (`labeling.tasks.add_tasks`): the same images brought in by upload,
reference import, dataset import and storage sync become the same tasks and move the project's
counters the same way; `add_tasks` itself keeps each status's counter and the file-name column.
The sync runs against the loopback S3 server, as in tests/media."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from defectlab.geometry import Shape
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import JobState
from defectlab.labeling import services, tasklist
from defectlab.labeling.models import (
    AnnotationVersion,
    Prediction,
    Project,
    Task,
    TaskLabel,
    TaskStatus,
)
from defectlab.labeling.tasks import (
    NewAnnotation,
    NewPrediction,
    NewTask,
    add_annotations,
    add_predictions,
    add_tasks,
)
from defectlab.tenancy.models import Role
from defectlab.transfer.sync import start_sync
from tests.conftest import Tenant, jpeg_bytes
from tests.labeling.test_dataset_roundtrip import COUNTERS, empty_project, manager, run_import
from tests.media.conftest import bucket, loopback_only, s3_server  # noqa: F401 (fixtures)
from tests.media.s3server import LoopbackS3
from tests.media.storages import allow_loopback, make_connection, png, put, run

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.django_db]

# Three images from one camera: two PNGs and a JPEG with an upper-case suffix.
IMAGES = {"0001.png": png(40, 30), "0002.JPG": jpeg_bytes(64, 48), "0003.png": png(10, 20)}
SIZES = {"0001.png": (40, 30), "0002.JPG": (64, 48), "0003.png": (10, 20)}


def counters(project: Project) -> dict[str, int]:
    project.refresh_from_db()
    return {name: getattr(project, name) for name in COUNTERS}


def described(project: Project, *, sizes: bool = True) -> list[tuple[Any, ...]]:
    """What a task says about its image, whichever way it came in (not where it is kept)."""
    return [
        (
            task.file_name,
            task.width,
            task.height,
            task.size_bytes if sizes else None,
            task.status,
            task.has_annotation,
            task.has_prediction,
            task.assignee_id,
            task.organization_id,
        )
        for task in Task.objects.filter(project=project).order_by("file_name")
    ]


def zipped(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_the_same_images_brought_in_four_ways_make_the_same_tasks_and_counters(
    tenant: Tenant,
    storage_dir: Any,
    s3_server: LoopbackS3,  # noqa: F811
    bucket: str,  # noqa: F811
    settings: Any,
) -> None:
    # Upload.
    uploaded = empty_project(tenant, "Uploaded")
    services.create_uploaded_tasks(
        uploaded, [checked_image(name, data) for name, data in IMAGES.items()]
    )
    # Reference import, with the sizes the list gives (nothing is fetched at import).
    referenced = empty_project(tenant, "Referenced")
    services.import_references(
        referenced,
        [
            {"image": f"http://127.0.0.1:9/line3/{name}", "width": width, "height": height}
            for name, (width, height) in SIZES.items()
        ],
    )
    # Dataset import: a YOLO archive of the images, nothing drawn on them.
    imported = empty_project(tenant, "Imported")
    archive = {"data.yaml": "names: [scratch]\n"}
    archive.update({f"images/train/{name}": data for name, data in IMAGES.items()})
    job = run_import(manager(tenant), imported, "yolo", zipped(archive))
    assert job.state == JobState.SUCCEEDED, job.error
    # Storage sync into the tenant's project (which holds tasks already: compare what it adds).
    allow_loopback(settings)
    synced = tenant.project
    before = counters(synced)
    known = set(Task.objects.filter(project=synced).values_list("pk", flat=True))
    storage = make_connection(s3_server, bucket, tenant, prefix="line3")
    put(s3_server, bucket, {f"line3/{name}": data for name, data in IMAGES.items()})
    sync_job = run(start_sync(storage, tenant.user(Role.MANAGER)).pk)
    assert sync_job.state == JobState.SUCCEEDED, sync_job.error
    Task.objects.filter(pk__in=known).delete()  # only what the sync added stays to compare
    added = {name: counters(synced)[name] - before[name] for name in COUNTERS}

    expected = {name: 0 for name in COUNTERS} | {"count_new": 3}
    assert counters(uploaded) == counters(referenced) == counters(imported) == added == expected
    assert described(uploaded) == described(imported) == described(synced)
    assert [row[:3] for row in described(uploaded)] == [
        (name, *SIZES[name]) for name in sorted(IMAGES)
    ]
    assert described(referenced, sizes=False) == described(uploaded, sizes=False)
    # Each task's image is somewhere its project can read, never a bare name.
    for project in (uploaded, referenced, imported, synced):
        assert all("/" in image for image in project.tasks.values_list("image", flat=True))


def test_add_tasks_counts_each_status_and_keeps_the_end_of_a_long_name(tenant: Tenant) -> None:
    project = empty_project(tenant)
    long_name = "lot-7/" + "x" * 300 + "/0001.png"
    rows = [
        NewTask(image="http://127.0.0.1:9/a.png", file_name=long_name, width=4, height=3),
        NewTask(
            image="http://127.0.0.1:9/b.png",
            file_name="b.png",
            status=TaskStatus.SUBMITTED,
            has_annotation=True,
        ),
        NewTask(image="http://127.0.0.1:9/c.png", file_name="c.png", has_prediction=True),
    ]
    created = add_tasks(project, rows)
    assert [task.pk is not None for task in created] == [True, True, True]
    assert counters(project) == {name: 0 for name in COUNTERS} | {
        "count_new": 2,
        "count_submitted": 1,
    }
    first = Task.objects.get(pk=created[0].pk)
    assert len(first.file_name) == 255 and first.file_name.endswith("xx/0001.png")
    # The fast path (no tasks back) writes the same rows and counters.
    other = empty_project(tenant, "Other")
    assert add_tasks(other, rows, returning=False) == []
    assert counters(other) == counters(project)
    assert described(other) == described(project)
    assert set(other.tasks.values_list("created_at", flat=True)) != {None}
    # Nothing to add changes nothing.
    assert add_tasks(other, []) == [] and counters(other) == counters(project)


def test_annotations_and_predictions_in_bulk_keep_history_label_index_and_flags(
    tenant: Tenant,
) -> None:
    project = tenant.project
    scratch, dent = tenant.label.pk, project.labels.get(name="dent").pk
    first, second, third = add_tasks(
        project,
        [NewTask(image=f"http://127.0.0.1:9/{n}.png", file_name=f"{n}.png") for n in "abc"],
    )
    author = tenant.user(Role.ANNOTATOR)
    shapes = [
        Shape.box(1, 1, 5, 5, label=scratch).to_dict(),
        Shape.box(2, 2, 6, 6, label=dent).to_dict(),
        Shape.box(3, 3, 7, 7, label=scratch).to_dict(),
    ]
    (annotation,) = add_annotations(
        [NewAnnotation(first, shapes, ["NG", "NG", "OK"])], author_id=author.pk
    )
    assert annotation.version == 1 and annotation.tags == ["NG", "OK"]
    history = AnnotationVersion.objects.get(annotation=annotation)
    assert (history.version, history.author_id, history.shapes) == (1, author.pk, shapes)
    indexed = TaskLabel.objects.filter(task=first).values_list("label_id", flat=True)
    assert sorted(indexed) == sorted([scratch, dent])
    # A label filter finds the task by the index, as after an annotator's save.
    found = tasklist.TaskFilter(label=dent).apply(Task.objects.filter(project=project))
    assert list(found) == [first]

    # Pre-annotation: two models' predictions for one task, one for another.
    box = [Shape.box(1, 1, 4, 4, label=scratch).to_dict()]
    add_predictions(
        [
            NewPrediction(second, " detector ", "v1", box),
            NewPrediction(second, "detector", "v2" + "9" * 200, box),
            NewPrediction(third, "detector", "v1", []),
        ]
    )
    flags = dict(Task.objects.filter(project=project).values_list("pk", "has_prediction"))
    assert [flags[task.pk] for task in (first, second, third)] == [False, True, True]
    names = Prediction.objects.filter(task=second).order_by("id")
    assert [(p.model_name, len(p.model_version)) for p in names] == [
        ("detector", 2),
        ("detector", 100),
    ]
