"""Datasets at the project level: a project exported by the export job, downloaded through the
API and imported by the dataset-import job into a new project gives back the same images (byte
for byte), label names, shapes (within the format's precision) and tags — for every format that
can be imported. Also: what the export options do, malformed uploads failing whole and naming
the entry at fault, and the import job's all-or-nothing and idempotent behaviour."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rest_framework.test import APIClient

from defectlab.datasets import FORMATS
from defectlab.geometry import Shape, ShapeType, shapes_from_json
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.queue import RetryLater
from defectlab.jobs.runner import Progress, run_job
from defectlab.labeling import services, workflow
from defectlab.labeling import tasks as labeling_tasks
from defectlab.labeling.models import (
    Annotation,
    AnnotationVersion,
    Label,
    Prediction,
    Project,
    Task,
    TaskLabel,
    TaskStatus,
)
from defectlab.media.storage import LocalStorage, default_storage
from defectlab.tenancy.models import AuditEvent, Role, User
from defectlab.transfer import datasetimport
from defectlab.transfer.datasetimport import importable_formats, run_dataset_import, upload_key
from tests.conftest import Tenant, client_for
from tests.datasets.support import boxes, point_sets, polygons

fcntl: Any = None
with contextlib.suppress(ImportError):
    import fcntl

pytestmark = pytest.mark.django_db

BOX, POLYGON, POINTS = ShapeType.BOX, ShapeType.POLYGON, ShapeType.POINTS
LOADABLE = importable_formats()
COUNTERS = ("count_new", "count_in_progress", "count_submitted", "count_approved", "count_rejected")
# Formats that write label colours (COCO categories, CVAT <meta>, the Label Studio config, VOC's
# labelmap.txt); YOLO has names only.
COLORED = {"coco", "cvat", "labelstudio", "voc"}
DRAWN = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_every_format_with_a_loader_is_importable() -> None:
    assert set(LOADABLE) == {
        "yolo",
        "yolo_seg",
        "coco",
        "voc",
        "labelstudio",
        "cvat",
        "classification",
    }


# --- building projects --------------------------------------------------------------------------


def image_bytes(width: int, height: int, seed: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    color = (seed * 53 % 256, seed * 97 % 256, 200 - seed * 7 % 200)
    Image.new("RGB", (width, height), color).save(buffer, fmt)
    return buffer.getvalue()


@dataclass
class Drawn:
    """One task to create: its image, and its annotation with label *names*."""

    file_name: str
    data: bytes
    shapes: list[tuple[str, Shape]] = field(default_factory=list)  # (label name, shape)
    tags: list[str] = field(default_factory=list)
    annotate: bool = True


def source_project(tenant: Tenant, name: str = "Source") -> Project:
    return services.create_project(
        tenant.organization,
        tenant.user(Role.OWNER),
        name=name,
        shape_types=["box", "polygon", "points"],
        tags=[{"name": "OK", "color": "#2e7d32"}, {"name": "NG", "color": "#c62828"}],
        labels=[
            {
                "name": "scratch",
                "color": "#e53935",
                "attributes": [
                    {"name": "severity", "options": ["minor", "major"], "default": "minor"}
                ],
            },
            {"name": "dent", "color": "#1e88e5"},
        ],
    )


def empty_project(tenant: Tenant, name: str = "Target") -> Project:
    return services.create_project(tenant.organization, tenant.user(Role.OWNER), name=name)


def fill(project: Project, user: User, drawn: list[Drawn]) -> list[Task]:
    tasks = services.create_uploaded_tasks(
        project, [checked_image(entry.file_name, entry.data) for entry in drawn]
    )
    labels = {label.name: label.pk for label in project.labels.all()}
    for task, entry in zip(tasks, drawn, strict=True):
        if not entry.annotate:
            continue
        shapes = [
            Shape(shape.type, shape.points, labels[name], shape.attributes).to_dict()
            for name, shape in entry.shapes
        ]
        workflow.save_annotation(
            task, user, base_version=None, shapes=shapes, tags=entry.tags, submit=True
        )
    return tasks


def fixed_tasks(*, integer: bool = False) -> list[Drawn]:
    """A few tasks with every kind of shape, attributes and tags; PNG and JPEG images."""
    fraction = 0.0 if integer else 0.25
    return [
        Drawn(
            "a.png",
            image_bytes(64, 48, 1),
            [
                ("scratch", Shape.box(5, 5, 20 + fraction, 20, label=0, attributes={"severity": "major"})),
                ("dent", Shape.polygon([(30, 5), (60, 10), (40, 40)], label=0)),
            ],
            ["NG"],
        ),
        Drawn(
            "b.jpg",
            image_bytes(80, 60, 2, "JPEG"),
            [
                ("dent", Shape.box(10 + fraction, 12, 70, 50 - fraction, label=0)),
                ("scratch", Shape(POINTS, ((3, 4), (50, 50)), 0)),
            ],
            ["OK"],
        ),
        Drawn("c.png", image_bytes(50, 50, 3), annotate=False),
        Drawn("d.png", image_bytes(40, 30, 4), [("scratch", Shape.box(1, 2, 39, 29, label=0))]),
    ]  # fmt: skip


# --- going through the API ----------------------------------------------------------------------


def manager(tenant: Tenant) -> APIClient:
    return client_for(tenant.user(Role.MANAGER))


def run_export(client: APIClient, project: Project, **options: Any) -> Job:
    response = client.post(f"/api/projects/{project.pk}/export/", options, format="json")
    assert response.status_code == 202, response.content
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == JobState.SUCCEEDED, job.error
    return job


def download(client: APIClient, job: Job) -> bytes:
    response = client.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 200
    # Reading to the end closes the file (the test client then closes the response).
    return b"".join(response.streaming_content)  # type: ignore[attr-defined]


def start_import(client: APIClient, project: Project, fmt: str, data: bytes) -> Any:
    return client.post(
        f"/api/projects/{project.pk}/import-dataset/",
        {"file": SimpleUploadedFile("dataset.zip", data), "format": fmt},
        format="multipart",
    )


def run_import(client: APIClient, project: Project, fmt: str, data: bytes) -> Job:
    response = start_import(client, project, fmt, data)
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "dataset_import" and response.json()["state"] == "queued"
    run_job(response.json()["id"])
    return Job.objects.get(pk=response.json()["id"])


def export_then_import(
    client: APIClient, source: Project, target: Project, fmt: str, **options: Any
) -> tuple[Job, bytes]:
    archive = download(client, run_export(client, source, format=fmt, **options))
    job = run_import(client, target, fmt, archive)
    assert job.state == JobState.SUCCEEDED, job.error
    return job, archive


# --- comparing ----------------------------------------------------------------------------------


def as_box(shape: Shape) -> Shape:
    x1, y1, x2, y2 = shape.bbox()
    return Shape.box(x1, y1, x2, y2, label=shape.label, attributes=shape.attributes)


def as_polygon(shape: Shape) -> Shape:
    (x1, y1), (x2, y2) = shape.points
    corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    return Shape.polygon(corners, label=shape.label, attributes=shape.attributes)


def expected_shape(fmt: str, shape: Shape) -> Shape | None:
    """What `fmt` gives back for `shape` (FORMATS[fmt].keeps says what survives)."""
    keeps = FORMATS[fmt].keeps
    if "attributes" not in keeps:
        shape = Shape(shape.type, shape.points, shape.label)
    if shape.type.value in keeps:
        return shape
    if shape.type is POLYGON and "box" in keeps:
        return as_box(shape)
    if shape.type is BOX and "polygon" in keeps:
        return as_polygon(shape)
    return None


def tolerance(fmt: str, width: int, height: int) -> float:
    if fmt in ("yolo", "yolo_seg"):  # 6 decimals of a 0..1 fraction of the side
        return 1e-6 * max(width, height) + 1e-6
    return 1e-5


def named(shapes: list[Shape], names: dict[int, str]) -> list[tuple[str, str, Shape]]:
    return [(shape.type.value, names[shape.label], shape) for shape in shapes]


def assert_same_shapes(
    fmt: str, task: Task, original: list[Shape], back: list[Shape], source: Project, target: Project
) -> None:
    source_names = {label.pk: label.name for label in source.labels.all()}
    target_names = {label.pk: label.name for label in target.labels.all()}
    wanted = [s for s in (expected_shape(fmt, shape) for shape in original) if s is not None]
    got = named(back, target_names)
    assert [(kind, name) for kind, name, _ in got] == [
        (kind, name) for kind, name, _ in named(wanted, source_names)
    ], task.file_name
    limit = tolerance(fmt, task.width or 0, task.height or 0)
    for mine, (_kind, _name, theirs) in zip(wanted, got, strict=True):
        assert len(mine.points) == len(theirs.points)
        for (ax, ay), (bx, by) in zip(mine.points, theirs.points, strict=True):
            assert math.isclose(ax, bx, abs_tol=limit) and math.isclose(ay, by, abs_tol=limit), (
                task.file_name,
                mine,
                theirs,
            )
        assert dict(theirs.attributes) == dict(mine.attributes)


def current(task: Task) -> tuple[list[Shape], list[str]]:
    annotation = Annotation.objects.filter(task=task).first()
    if annotation is None:
        return [], []
    return shapes_from_json(annotation.shapes), list(annotation.tags)


def assert_counters_true(project: Project) -> None:
    project.refresh_from_db()
    stored = {counter: getattr(project, counter) for counter in COUNTERS}
    services.recount(project)
    project.refresh_from_db()
    assert stored == {counter: getattr(project, counter) for counter in COUNTERS}


def assert_round_trip(fmt: str, source: Project, target: Project) -> None:
    """The target holds the source's images, label names, shapes and tags (as `fmt` keeps them)."""
    keeps = FORMATS[fmt].keeps
    storage = default_storage()
    originals = {task.file_name: task for task in Task.objects.filter(project=source)}
    imported = {task.file_name: task for task in Task.objects.filter(project=target)}
    assert sorted(imported) == sorted(originals)
    target.refresh_from_db()
    if fmt != "classification":
        source_labels = [(label.name, label.color) for label in source.labels.all()]
        target_labels = [(label.name, label.color) for label in target.labels.all()]
        assert [name for name, _ in target_labels] == [name for name, _ in source_labels]
        if fmt in COLORED:
            assert target_labels == source_labels
        else:  # a format without colours: each new class gets a colour of its own
            assert len({color for _, color in target_labels}) == len(target_labels)
    for name, original in originals.items():
        task = imported[name]
        assert storage.read(task.image) == storage.read(original.image)
        assert (task.width, task.height, task.size_bytes) == (
            original.width,
            original.height,
            original.size_bytes,
        )
        shapes, tags = current(original)
        back_shapes, back_tags = current(task)
        assert_same_shapes(fmt, task, shapes, back_shapes, source, target)
        assert back_tags == (tags if "tags" in keeps else [])
        if back_shapes or back_tags:
            assert task.status == TaskStatus.SUBMITTED and task.has_annotation
            version = AnnotationVersion.objects.get(annotation__task=task)
            assert (
                version.version == 1 and version.shapes == Annotation.objects.get(task=task).shapes
            )
            links = set(TaskLabel.objects.filter(task=task).values_list("label_id", flat=True))
            assert links == {shape.label for shape in back_shapes}
        else:
            assert task.status == TaskStatus.NEW and not task.has_annotation
    if "tags" in keeps:
        used = {tag for task in originals.values() for tag in current(task)[1]}
        assert used <= {tag["name"] for tag in target.tags}
    assert_counters_true(target)


# --- the round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", LOADABLE)
def test_a_project_survives_export_and_import_in_every_format(tenant: Tenant, fmt: str) -> None:
    source = source_project(tenant)
    fill(source, tenant.user(Role.MANAGER), fixed_tasks(integer=fmt == "voc"))
    target = empty_project(tenant)
    client = manager(tenant)
    # c.png was never labeled: asked for, it goes out and comes back as a new task.
    job, _archive = export_then_import(client, source, target, fmt, include_unlabeled=True)
    assert_round_trip(fmt, source, target)
    created = [label.name for label in source.labels.all()] if fmt != "classification" else []
    assert job.result["labels_created"] == created
    assert job.result["tasks"] == 4 and job.result["committed"] is True
    # The upload is gone once the import landed; the images are the tasks' own files.
    assert not default_storage().exists(upload_key(job))
    assert (job.done, job.total) == (4, 4)


@st.composite
def drawn_tasks(draw: st.DrawFn, kinds: tuple[ShapeType, ...]) -> list[Drawn]:
    tasks = []
    for index in range(draw(st.integers(1, 3))):
        width, height = draw(st.integers(32, 300)), draw(st.integers(32, 300))
        shapes = []
        for _ in range(draw(st.integers(0, 4))):
            name = draw(st.sampled_from(["scratch", "dent"]))
            kind = draw(st.sampled_from(kinds))
            if kind is BOX:
                shape = draw(boxes(width, height, 0))
            elif kind is POLYGON:
                shape = draw(polygons(width, height, 0))
            else:
                shape = draw(point_sets(width, height, 0))
            if name == "scratch":
                severity = draw(st.sampled_from(["minor", "major"]))
                shape = Shape(shape.type, shape.points, 0, {"severity": severity})
            shapes.append((name, shape))
        tags = draw(st.lists(st.sampled_from(["OK", "NG"]), unique=True))
        fmt = draw(st.sampled_from(["PNG", "JPEG"]))
        suffix = ".png" if fmt == "PNG" else ".jpg"
        tasks.append(
            Drawn(f"img{index}{suffix}", image_bytes(width, height, index, fmt), shapes, tags)
        )
    return tasks


@pytest.mark.parametrize(
    ("fmt", "kinds"),
    [("yolo", (BOX, POLYGON)), ("coco", (BOX, POLYGON)), ("cvat", (BOX, POLYGON, POINTS))],
)
@DRAWN
@given(data=st.data())
def test_drawn_shapes_survive_the_round_trip(
    tenant: Tenant, fmt: str, kinds: tuple[ShapeType, ...], data: st.DataObject
) -> None:
    drawn = data.draw(drawn_tasks(kinds))
    source = source_project(tenant)
    fill(source, tenant.user(Role.MANAGER), drawn)
    target = empty_project(tenant)
    export_then_import(manager(tenant), source, target, fmt)
    assert_round_trip(fmt, source, target)


def test_an_import_maps_names_to_existing_labels_and_widens_their_schema(tenant: Tenant) -> None:
    source = source_project(tenant)
    fill(source, tenant.user(Role.MANAGER), fixed_tasks())
    # The target knows "scratch" (without "major", with a hotkey) but not "dent" nor tag "NG".
    target = services.create_project(
        tenant.organization,
        tenant.user(Role.OWNER),
        name="Target",
        tags=["OK"],
        labels=[
            {
                "name": "scratch",
                "color": "#000000",
                "hotkey": "s",
                "attributes": [
                    {"name": "severity", "options": ["minor", "fatal"], "default": "fatal"}
                ],
            }
        ],
    )
    scratch = target.labels.get()
    job, _archive = export_then_import(manager(tenant), source, target, "cvat")
    assert job.result["labels_created"] == ["dent"]
    assert job.result["labels_extended"] == ["scratch"]
    assert job.result["tags_added"] == ["NG"]
    assert job.result["shape_types_added"] == ["points"]
    scratch.refresh_from_db()
    assert (scratch.color, scratch.hotkey) == ("#000000", "s")
    assert scratch.attributes == [
        {"name": "severity", "options": ["minor", "fatal", "major"], "default": "fatal"}
    ]
    target.refresh_from_db()
    assert [tag["name"] for tag in target.tags] == ["OK", "NG"]
    assert target.shape_types == ["box", "polygon", "points"]
    task = Task.objects.get(project=target, file_name="a.png")
    shapes, _tags = current(task)
    assert shapes[0].label == scratch.pk and dict(shapes[0].attributes) == {"severity": "major"}
    # The imported annotation is one a person could save again unchanged.
    workflow.save_annotation(
        task,
        tenant.user(Role.MANAGER),
        base_version=1,
        shapes=Annotation.objects.get(task=task).shapes,
        tags=Annotation.objects.get(task=task).tags,
    )


# --- what the export options do -----------------------------------------------------------------


def members(archive: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return [name for name in opened.namelist() if not name.endswith("/")]


def many_tasks(tenant: Tenant, project: Project, count: int) -> list[Task]:
    drawn = [
        Drawn(
            f"panel-{index:02d}.png",
            image_bytes(40, 30, index),
            [("dent", Shape.box(2, 2, 20, 20, label=0))] if index % 3 else [],
            annotate=index % 2 == 0,
        )
        for index in range(count)
    ]
    return fill(project, tenant.user(Role.MANAGER), drawn)


def test_a_yolo_export_has_one_label_file_per_image_and_one_image_per_task(
    tenant: Tenant,
) -> None:
    project = source_project(tenant)
    tasks = many_tasks(tenant, project, 9)
    archive = download(
        manager(tenant),
        run_export(manager(tenant), project, format="yolo", include_unlabeled=True),
    )
    names = members(archive)
    images = [name for name in names if name.startswith("images/")]
    labels = [name for name in names if name.startswith("labels/")]
    assert len(images) == len(labels) == len(tasks) == 9
    assert {PurePosixPath(name).stem for name in images} == {
        PurePosixPath(name).stem for name in labels
    }


def test_only_approved_exports_only_approved_tasks(tenant: Tenant) -> None:
    project = source_project(tenant)
    tasks = many_tasks(tenant, project, 6)
    reviewer = tenant.user(Role.REVIEWER)
    approved = {tasks[0].file_name, tasks[4].file_name}
    for task in tasks:
        if task.file_name in approved:
            workflow.review(task, reviewer, verdict="approve")
    workflow.review(tasks[2], reviewer, verdict="reject", comment="redo")
    client = manager(tenant)
    job = run_export(client, project, format="yolo", only_approved=True)
    images = [name for name in members(download(client, job)) if name.startswith("images/")]
    assert {PurePosixPath(name).name for name in images} == approved
    assert job.result["items"] == 2
    everything = run_export(client, project, format="yolo", include_unlabeled=True)
    assert everything.result["items"] == 6


def splits_of(archive: bytes) -> dict[str, str]:
    """file name -> split, from a YOLO archive's images/<split>/<file>."""
    return {
        PurePosixPath(name).name: PurePosixPath(name).parts[1]
        for name in members(archive)
        if name.startswith("images/")
    }


def test_the_split_is_stable_for_a_seed_and_changes_with_it(tenant: Tenant) -> None:
    project = source_project(tenant)
    many_tasks(tenant, project, 16)
    client = manager(tenant)
    split = {"train": 0.5, "val": 0.3, "test": 0.2}

    def run(seed: int) -> dict[str, str]:
        job = run_export(
            client, project, format="yolo", split=split, seed=seed, include_unlabeled=True
        )
        return splits_of(download(client, job))

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert len(first) == 16 and set(first.values()) == {"train", "val", "test"}
    # Without a split, everything is in train (YOLO needs a folder).
    assert set(
        splits_of(download(client, run_export(client, project, format="yolo"))).values()
    ) == {"train"}


def test_predictions_are_exported_with_their_scores_when_asked(tenant: Tenant) -> None:
    source = source_project(tenant)
    tasks = fill(source, tenant.user(Role.MANAGER), fixed_tasks())
    dent = source.labels.get(name="dent")
    workflow.add_prediction(
        tasks[2],
        model_name="detector",
        model_version="3",
        shapes=[Shape.box(4, 4, 30, 30, label=dent.pk, score=0.875).to_dict()],
    )
    client = manager(tenant)
    # The predicted task was never labeled, so the exports ask for unlabeled tasks too.
    with_predictions = download(
        client,
        run_export(
            client, source, format="labelstudio", include_predictions=True, include_unlabeled=True
        ),
    )
    without = download(
        client, run_export(client, source, format="labelstudio", include_unlabeled=True)
    )

    def tasks_json(archive: bytes) -> list[dict[str, Any]]:
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            return json.loads(opened.read("tasks.json"))

    predicted = [task for task in tasks_json(with_predictions) if task.get("predictions")]
    assert len(predicted) == 1
    (result,) = predicted[0]["predictions"][0]["result"]
    assert result["score"] == 0.875 and result["value"]["rectanglelabels"] == ["dent"]
    assert not any(task.get("predictions") for task in tasks_json(without))
    # ... and come back as predictions (not annotations) with their scores.
    target = empty_project(tenant)
    job = run_import(client, target, "labelstudio", with_predictions)
    assert job.result["predictions"] == 1
    prediction = Prediction.objects.get(task__project=target)
    (shape,) = shapes_from_json(prediction.shapes)
    assert shape.score == 0.875 and shape.points == ((4.0, 4.0), (30.0, 30.0))
    assert Task.objects.get(pk=prediction.task_id).has_prediction
    # The task had no annotation: it stays new, with the prediction to start from.
    assert Task.objects.get(pk=prediction.task_id).status == TaskStatus.NEW


@pytest.mark.skipif(fcntl is None, reason="needs flock")
def test_an_export_sweeps_the_partial_files_of_dead_runs_only(
    tenant: Tenant, storage_dir: Path
) -> None:
    folder = storage_dir / "org" / str(tenant.organization.pk) / "exports"
    folder.mkdir(parents=True)
    dead, alive = folder / ".job-98.zip.x1.partial", folder / ".job-99.zip.x2.partial"
    dead.write_bytes(b"PK half an archive")
    alive.write_bytes(b"PK being written")
    with alive.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as a live export holds its own
        job = run_export(manager(tenant), tenant.project, format="coco")
        assert sorted(path.name for path in folder.iterdir()) == [alive.name, f"job-{job.pk}.zip"]
    # Once its writer is gone, the next export takes it away too.
    run_export(manager(tenant), tenant.project, format="coco")
    assert not alive.exists()


# --- malformed uploads --------------------------------------------------------------------------


def zip_bytes(entries: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


PNG = image_bytes(64, 48, 5)


def truncated_jpeg() -> bytes:
    """A JPEG whose header reads (so the dataset loads) but whose pixels do not decode."""
    noise = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    return buffer.getvalue()[: buffer.tell() // 2]


def coco(images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "scratch"}],
        }
    )


MALFORMED: dict[str, tuple[str, dict[str, bytes | str], str]] = {
    "yolo class out of range": (
        "yolo",
        {
            "data.yaml": "names: [scratch]\n",
            "images/train/a.png": PNG,
            "labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.1 0.1\n",
        },
        "labels/train/a.txt line 2",
    ),
    "yolo label without image": (
        "yolo",
        {
            "data.yaml": "names: [scratch]\n",
            "images/train/a.png": PNG,
            "labels/train/a.txt": "",
            "labels/train/b.txt": "0 0.5 0.5 0.2 0.2\n",
        },
        "labels/train/b.txt",
    ),
    "image that does not decode": (
        "yolo",
        {
            "data.yaml": "names: [scratch]\n",
            "images/train/a.png": PNG,
            "images/train/b.jpg": truncated_jpeg(),
            "labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n",
        },
        "b.jpg is truncated or damaged",
    ),
    "label name too long": (
        "yolo",
        {"data.yaml": "names: [" + "x" * 101 + "]\n", "images/train/a.png": PNG},
        "x" * 60 + "…",
    ),
    "coco broken JSON": (
        "coco",
        {"annotations/instances_default.json": '{"images": [\n  {"id": 1,,}]}', "images/default/a.png": PNG},
        "annotations/instances_default.json line 2",
    ),
    "coco annotation of an unknown image": (
        "coco",
        {
            "annotations/instances_default.json": coco(
                [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
                [{"id": 1, "image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5]}],
            ),
            "images/default/a.png": PNG,
        },
        "annotations/instances_default.json: annotations[0]",
    ),
    "coco size that is not the image's": (
        "coco",
        {
            "annotations/instances_default.json": coco(
                [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}], []
            ),
            "images/default/a.png": PNG,
        },
        "a.png: The annotations were drawn on a 100×80 image, but the image is 64×48 pixels.",
    ),
    "coco image missing": (
        "coco",
        {
            "annotations/instances_default.json": coco(
                [
                    {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                    {"id": 2, "file_name": "gone.png", "width": 64, "height": 48},
                ],
                [],
            ),
            "images/default/a.png": PNG,
        },
        "gone.png: This image is not in the archive.",
    ),
    "cvat box outside the image": (
        "cvat",
        {
            "annotations.xml": (
                "<annotations><image id='0' name='a.png' width='64' height='48'>"
                "<box label='scratch' xtl='1' ytl='1' xbr='10' ybr='10'/>"
                "<box label='scratch' xtl='1' ytl='1' xbr='90' ybr='10'/></image></annotations>"
            ),
            "images/a.png": PNG,
        },
        "annotations.xml: image 'a.png' box 2",
    ),
    "voc broken XML": (
        "voc",
        {"Annotations/a.xml": "<annotation><size>", "JPEGImages/a.png": PNG},
        "Annotations/a.xml",
    ),
    "label studio task without data": (
        "labelstudio",
        {"tasks.json": json.dumps([{"data": {"image": "images/a.png"}}, {"id": 2}]), "images/a.png": PNG},
        "tasks.json: [1]",
    ),
    "classification with an unknown split": (
        "classification",
        {"labels.csv": "file,tags,split\nOK/a.png,OK,train\nOK/b.png,OK,later\n", "OK/a.png": PNG, "OK/b.png": PNG},
        "labels.csv line 3",
    ),
    "not a dataset of the format": (
        "cvat",
        {"images/a.png": PNG},
        "annotations.xml is missing.",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """Everything an import could change: rows, schema, counters and stored files."""

    tasks: int
    rows: tuple[int, ...]
    labels: tuple[Any, ...]
    schema: str
    counters: tuple[int, ...]
    files: frozenset[str]

    @classmethod
    def take(cls, project: Project, root: Path) -> Snapshot:
        project.refresh_from_db()
        files = (
            {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
            if root.exists()
            else set()
        )
        return cls(
            tasks=Task.objects.filter(project=project).count(),
            rows=tuple(model.objects.count() for model in (Task, Annotation, AnnotationVersion, TaskLabel, Prediction, Label)),
            labels=tuple(project.labels.values_list("name", "color", "attributes")),
            schema=json.dumps([project.tags, project.shape_types]),
            counters=tuple(getattr(project, counter) for counter in COUNTERS),
            files=frozenset(files),
        )  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_dataset_fails_naming_the_entry_and_changes_nothing(
    tenant: Tenant, storage_dir: Path, case: str
) -> None:
    fmt, entries, where = MALFORMED[case]
    project = tenant.project
    before = Snapshot.take(project, storage_dir)
    job = run_import(manager(tenant), project, fmt, zip_bytes(entries))
    assert job.state == JobState.FAILED
    assert where in job.error, job.error
    assert Snapshot.take(project, storage_dir) == before  # the upload is gone again too


def test_a_failure_after_images_were_stored_removes_them(tenant: Tenant, storage_dir: Path) -> None:
    # a.png is stored before b.png turns out not to decode; the import must take a.png back.
    fmt, entries, _where = MALFORMED["image that does not decode"]
    before = Snapshot.take(tenant.project, storage_dir)
    job = run_import(manager(tenant), tenant.project, fmt, zip_bytes(entries))
    assert job.state == JobState.FAILED and job.done == 1
    assert Snapshot.take(tenant.project, storage_dir) == before


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"format": "yolo"}, 400, "“file”"),
        ({"format": "yolo", "file": SimpleUploadedFile("d.zip", b"not a zip")}, 400, "d.zip is not a valid zip archive."),
        ({"format": "pdf", "file": SimpleUploadedFile("d.zip", zip_bytes({"a": "b"}))}, 400, "yolo, yolo_seg"),
        ({"file": SimpleUploadedFile("d.zip", zip_bytes({"a": "b"}))}, 400, "Choose the dataset's format"),
    ],
)  # fmt: skip
def test_an_upload_that_is_not_a_dataset_zip_is_refused_at_once(
    tenant: Tenant, storage_dir: Path, fields: dict[str, Any], status: int, message: str
) -> None:
    before = Snapshot.take(tenant.project, storage_dir)
    jobs = Job.objects.count()
    response = manager(tenant).post(
        f"/api/projects/{tenant.project.pk}/import-dataset/", fields, format="multipart"
    )
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert Job.objects.count() == jobs
    assert Snapshot.take(tenant.project, storage_dir) == before


def test_an_archive_over_the_size_limit_is_refused(
    tenant: Tenant, settings: Any, storage_dir: Path
) -> None:
    settings.MAX_ARCHIVE_MB = 1
    content = bytes(random.Random(0).choices(b"abcd", k=1024 * 1024 + 10))
    # Stored, not deflated: the upload itself is over the limit.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.yaml", "names: [a]\n")
        archive.writestr("images/a.bmp", content)
    response = start_import(manager(tenant), tenant.project, "yolo", buffer.getvalue())
    assert response.status_code == 413
    assert Job.objects.count() == 0
    # Deflated, it is small enough to upload but unpacks past the limit: the job refuses it.
    big = zip_bytes({"data.yaml": "names: [a]\n", "images/a.bmp": content})
    assert len(big) < 1024 * 1024
    before = Snapshot.take(tenant.project, storage_dir)
    job = run_import(manager(tenant), tenant.project, "yolo", big)
    assert job.state == JobState.FAILED
    assert job.error == "images/a.bmp: This file is larger than the import limit."
    assert Snapshot.take(tenant.project, storage_dir) == before


def test_archive_limits_come_from_the_settings(settings: Any) -> None:
    settings.MAX_ARCHIVE_MB, settings.MAX_ARCHIVE_FILES, settings.MAX_IMAGE_PIXELS = 3, 7, 1000
    limits = datasetimport.limits()
    assert (limits.max_images, limits.max_total_bytes, limits.max_image_pixels) == (
        7,
        3 * 1024 * 1024,
        1000,
    )


# --- the job: permissions, references, all-or-nothing, idempotence ----------------------------


def test_only_project_managers_of_the_organization_may_import(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    data = zip_bytes({"data.yaml": "names: [a]\n", "images/a.png": PNG})
    for role in (Role.ANNOTATOR, Role.REVIEWER):
        assert (
            start_import(client_for(tenant.user(role)), tenant.project, "yolo", data).status_code
            == 403
        )
    assert start_import(manager(other_tenant), tenant.project, "yolo", data).status_code == 404
    response = start_import(manager(tenant), tenant.project, "yolo", data)
    assert response.status_code == 202
    event = AuditEvent.objects.get(action="project.dataset_import_started")
    assert event.data == {
        "format": "yolo",
        "file_name": "dataset.zip",
        "job": response.json()["id"],
    }
    assert event.actor == tenant.user(Role.MANAGER)  # fmt: skip


def test_images_outside_the_archive_are_imported_by_their_address(tenant: Tenant) -> None:
    tasks = [
        {
            "id": 7,
            "data": {"image": "https://cameras.example/line-3/0001.jpg"},
            "annotations": [
                {
                    "result": [
                        {
                            "id": "r1",
                            "type": "rectanglelabels",
                            "from_name": "label",
                            "to_name": "image",
                            "original_width": 200,
                            "original_height": 100,
                            "value": {"x": 10, "y": 20, "width": 50, "height": 50, "rectanglelabels": ["dent"]},
                        }
                    ]
                }
            ],
        },
        {"id": 8, "data": {"image": "images/a.png"}},
    ]  # fmt: skip
    target = empty_project(tenant)
    job = run_import(
        manager(tenant),
        target,
        "labelstudio",
        zip_bytes({"tasks.json": json.dumps(tasks), "images/a.png": PNG}),
    )
    assert job.state == JobState.SUCCEEDED, job.error
    assert (job.result["images"], job.result["references"]) == (1, 1)
    remote = Task.objects.get(project=target, file_name="0001.jpg")
    assert (remote.image, remote.width, remote.height) == (
        "https://cameras.example/line-3/0001.jpg",
        200,
        100,
    )
    (shape,) = current(remote)[0]
    assert shape.points == ((20.0, 20.0), (120.0, 70.0))  # fmt: skip


def test_a_reference_that_is_not_a_web_address_is_refused(tenant: Tenant) -> None:
    tasks = [{"data": {"image": "file:///etc/passwd"}}]
    job = run_import(
        manager(tenant),
        empty_project(tenant),
        "labelstudio",
        zip_bytes({"tasks.json": json.dumps(tasks)}),
    )
    assert job.state == JobState.FAILED
    assert job.error.startswith("file:///etc/passwd: ")  # fmt: skip


def import_job(tenant: Tenant, target: Project) -> Job:
    source = source_project(tenant)
    fill(source, tenant.user(Role.MANAGER), fixed_tasks())
    client = manager(tenant)
    archive = download(client, run_export(client, source, format="coco", include_unlabeled=True))
    response = start_import(client, target, "coco", archive)
    assert response.status_code == 202
    return Job.objects.get(pk=response.json()["id"])


def test_a_second_run_of_a_finished_import_adds_nothing(tenant: Tenant, storage_dir: Path) -> None:
    target = empty_project(tenant)
    job = import_job(tenant, target)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    rows = Snapshot.take(target, Path(default_storage().root))  # type: ignore[attr-defined]
    # The worker died after the commit, before the job was marked done: it runs again.
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED, finished_at=None)
    run_job(job.pk)
    again = Job.objects.get(pk=job.pk)
    assert again.state == JobState.SUCCEEDED and again.result == job.result
    assert Snapshot.take(target, Path(default_storage().root)) == rows  # type: ignore[attr-defined]
    # Called straight, the handler too just answers what was imported.
    assert run_dataset_import(again, Progress(again)) == job.result


def test_a_database_failure_imports_nothing_and_the_retry_imports_everything(
    tenant: Tenant, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = empty_project(tenant)
    job = import_job(tenant, target)
    before = Snapshot.take(target, storage_dir)

    insert = labeling_tasks._insert

    def fail(model: Any, *args: Any, **kwargs: Any) -> Any:
        if model is AnnotationVersion:  # the last but one table an import writes
            raise DatabaseError("disk full")
        return insert(model, *args, **kwargs)

    monkeypatch.setattr(labeling_tasks, "_insert", fail)
    with pytest.raises(RetryLater):
        run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and "disk full" in job.error
    assert Snapshot.take(target, storage_dir) == before  # no rows, and the images are gone again
    assert default_storage().exists(upload_key(job))  # kept for the retry
    monkeypatch.undo()
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempts == 2
    assert Task.objects.filter(project=target).count() == 4
    assert_counters_true(target)


def test_an_import_from_storage_that_is_not_local_works_on_a_copy(
    tenant: Tenant, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Remote:
        """Storage without local paths (as S3 is), delegating to a local one."""

        def __init__(self) -> None:
            self.inner = LocalStorage(Path(settings.STORAGE_DIR))

        def __getattr__(self, name: str) -> Callable[..., Any]:
            return getattr(self.inner, name)

    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setattr(datasetimport, "default_storage", Remote)
    target = empty_project(tenant)
    job = import_job(tenant, target)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert Task.objects.filter(project=target).count() == 4
    assert list((tmp_path / "data" / "work").iterdir()) == []  # the working copy is gone


def test_imported_shapes_get_the_defaults_of_the_labels_attributes(tenant: Tenant) -> None:
    source = source_project(tenant)
    fill(source, tenant.user(Role.MANAGER), fixed_tasks())
    target = services.create_project(
        tenant.organization,
        tenant.user(Role.OWNER),
        name="Target",
        labels=[
            {
                "name": "scratch",
                "attributes": [
                    {"name": "severity", "options": ["minor", "fatal"], "default": "fatal"}
                ],
            }
        ],
    )
    # YOLO carries no attributes: every scratch comes back with the target label's default.
    job, _archive = export_then_import(manager(tenant), source, target, "yolo")
    assert job.result["labels_created"] == ["dent"] and job.result["labels_extended"] == []
    scratch = target.labels.get(name="scratch")
    task = Task.objects.get(project=target, file_name="a.png")
    shapes, _tags = current(task)
    assert [dict(shape.attributes) for shape in shapes if shape.label == scratch.pk] == [
        {"severity": "fatal"}
    ]
    assert [dict(shape.attributes) for shape in shapes if shape.label != scratch.pk] == [{}]
