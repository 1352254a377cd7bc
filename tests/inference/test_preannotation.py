"""Pre-annotation with the committed demo model on synthetic panels: the job stores one
prediction per task and version, in the project's labels, replaces it when run again (never a
second row), keeps a prediction someone already decided, takes only the tasks asked for, and
reports an image it cannot read without losing the others. Jobs run here as a worker would
(the shared ``queued`` / ``drain`` fixtures); the version check runs the real sandbox."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from defectlab.errors import Conflict, Forbidden, Invalid, NotFound
from defectlab.inference import mapping, preannotation, registry
from defectlab.inference.demo import model_bytes
from defectlab.inference.models import DetectionModel, ModelVersion, VersionState
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services, workflow
from defectlab.labeling.models import Prediction, Project, Task
from defectlab.media.storage import default_storage
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, client_for, make_tenant

pytestmark = pytest.mark.django_db

PANELS = 6
SEED = 700_000  # panels the demo model never saw in training


@pytest.fixture
def manager(tenant: Tenant) -> Any:
    return tenant.user(Role.MANAGER)


@pytest.fixture
def panels(tenant: Tenant, manager: Any) -> Project:
    """A project with the demo model's three classes (boxes and polygons) and six panels."""
    project = services.create_project(
        tenant.organization,
        manager,
        name="Panels",
        shape_types=["box", "polygon"],
        labels=[
            {
                "name": "Scratch",
                "attributes": [{"name": "severity", "options": ["minor", "major"]}],
            },
            {"name": "dent"},
            {"name": "stain"},
        ],
    )
    images = [checked_image(name, data) for name, data, _ in defect_images(PANELS, seed=SEED)]
    services.create_uploaded_tasks(project, images)
    return project


@pytest.fixture
def demo_model(
    tenant: Tenant, manager: Any, drain: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> DetectionModel:
    """The demo detector as version 1 (checked in the sandbox), alias production."""
    model = registry.create_model(tenant.organization, manager, name="Demo detector")
    with django_capture_on_commit_callbacks(execute=True):
        registry.upload_version(model, manager, model_bytes(), file_name="demo.onnx")
    drain()
    assert model.versions.get().state == VersionState.READY
    registry.move_alias(model, manager, "production", 1)
    return model


def run(
    project: Project,
    manager: Any,
    model: DetectionModel,
    drain: Callable[..., Any],
    capture: Any,
    **options: Any,
) -> Job:
    if "version" not in options:
        options.setdefault("alias", "production")
    with capture(execute=True):
        job = preannotation.start_preannotation(project, manager, model=model, **options)
    drain()
    job.refresh_from_db()
    return job


def predictions(project: Project) -> list[Prediction]:
    return list(Prediction.objects.filter(task__project=project).order_by("task_id"))


def test_every_task_gets_one_prediction_in_the_projects_labels(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    job = run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    assert job.state == JobState.SUCCEEDED, job.error
    version = demo_model.versions.get()
    rows = predictions(panels)
    assert len(rows) == PANELS
    assert {row.source for row in rows} == {f"version:{version.pk}"}
    assert {(row.model_name, row.model_version) for row in rows} == {("Demo detector", "1")}
    labels = {label.name: label.pk for label in panels.labels.all()}
    found = [shape for row in rows for shape in row.shapes]
    assert found, "the demo model finds the panels' defects"
    assert {shape["label"] for shape in found} <= set(labels.values())
    assert all(0.0 <= shape["score"] <= 1.0 for shape in found)
    # "scratch" became "Scratch" (case aside), with its attribute's default.
    scratches = [shape for shape in found if shape["label"] == labels["Scratch"]]
    assert all(shape["attributes"] == {"severity": "minor"} for shape in scratches)
    assert (job.done, job.total, job.failed) == (PANELS, PANELS, 0)
    assert job.result["tasks"] == PANELS
    assert job.result["shapes"] == len(found)
    assert job.result["version"] == 1 and job.result["alias"] == "production"
    assert Task.objects.filter(project=panels, has_prediction=True).count() == PANELS


def test_running_the_same_version_again_replaces_never_adds(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    first = {row.task_id: (row.pk, len(row.shapes)) for row in predictions(panels)}
    version = demo_model.versions.get()
    registry.update_version(version, manager, conf=0.99)  # almost nothing passes now
    job = run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks, version=1)
    assert job.state == JobState.SUCCEEDED, job.error
    second = {row.task_id: (row.pk, len(row.shapes)) for row in predictions(panels)}
    assert second.keys() == first.keys()  # one prediction per task, as before
    # New rows: a canvas still showing an old one names a prediction that is gone.
    assert not {pk for pk, _ in second.values()} & {pk for pk, _ in first.values()}
    assert sum(count for _, count in second.values()) < sum(count for _, count in first.values())


def test_a_prediction_someone_decided_stays_as_they_saw_it(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any, tenant: Tenant,
) -> None:  # fmt: skip
    run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    decided = next(row for row in predictions(panels) if row.shapes)
    annotator = tenant.user(Role.ANNOTATOR)
    workflow.save_annotation(
        decided.task,
        annotator,
        base_version=None,
        shapes=[decided.shapes[0]],
        proposals=[{"prediction": decided.pk, "index": 0, "fate": "accepted"}],
        submit=True,
    )
    registry.update_version(demo_model.versions.get(), manager, conf=0.99)
    job = run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    assert job.result["decided_kept"] == 1
    assert job.result["predictions"] == PANELS - 1
    decided_after = Prediction.objects.get(pk=decided.pk)
    assert decided_after.shapes == decided.shapes


def test_unlabeled_scope_leaves_annotated_tasks_alone(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any, tenant: Tenant,
) -> None:  # fmt: skip
    annotated = Task.objects.filter(project=panels).order_by("id").first()
    assert annotated is not None
    workflow.save_annotation(annotated, tenant.user(Role.ANNOTATOR), base_version=None, shapes=[])
    job = run(
        panels, manager, demo_model, drain, django_capture_on_commit_callbacks, scope="unlabeled"
    )
    assert job.total == PANELS - 1
    assert annotated.pk not in {row.task_id for row in predictions(panels)}
    # A task-table filter works the same way: only the one status asked for.
    job = run(
        panels, manager, demo_model, drain, django_capture_on_commit_callbacks,
        filters={"has_annotation": "true"},
    )  # fmt: skip
    assert (job.total, job.done) == (1, 1)


def test_the_class_mapping_decides_the_labels(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    labels = {label.name: label.pk for label in panels.labels.all()}
    mapping.save_project_model(
        panels, demo_model, manager, classes={"scratch": labels["dent"], "dent": None}
    )
    run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    found = {shape["label"] for row in predictions(panels) for shape in row.shapes}
    assert labels["Scratch"] not in found  # scratches are proposed as dents now
    with pytest.raises(Invalid):
        mapping.save_project_model(panels, demo_model, manager, classes={"crack": None})
    with pytest.raises(Invalid):
        mapping.save_project_model(panels, demo_model, manager, classes={"dent": 10**9})


def test_a_project_of_polygons_gets_polygons(
    tenant: Tenant, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    project = services.create_project(
        tenant.organization, manager, name="Outlines", shape_types=["polygon"],
        labels=[{"name": "scratch"}, {"name": "dent"}, {"name": "stain"}],
    )  # fmt: skip
    images = [checked_image(name, data) for name, data, _ in defect_images(3, seed=SEED)]
    services.create_uploaded_tasks(project, images)
    run(project, manager, demo_model, drain, django_capture_on_commit_callbacks)
    shapes = [shape for row in predictions(project) for shape in row.shapes]
    assert shapes and {shape["type"] for shape in shapes} == {"polygon"}


def test_a_broken_image_is_reported_and_the_others_are_done(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    broken = Task.objects.filter(project=panels).order_by("id")[2]
    default_storage().save(broken.image, b"\xff\xd8 not really a jpeg")
    job = run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    assert job.state == JobState.SUCCEEDED
    assert (job.done, job.failed) == (PANELS, 1)
    assert [error["task"] for error in job.result["errors"]] == [broken.pk]
    assert job.result["errors"][0]["error"]
    assert len(predictions(panels)) == PANELS - 1


def test_refusals(
    panels: Project, manager: Any, demo_model: DetectionModel, tenant: Tenant,
    queued: list[int], django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    start = preannotation.start_preannotation
    with pytest.raises(NotFound):
        start(panels, manager, model=demo_model, alias="staging")
    with pytest.raises(NotFound):
        start(panels, manager, model=demo_model, version=7)
    with pytest.raises(Invalid):
        start(panels, manager, model=demo_model, version=1, alias="production")
    with pytest.raises(Invalid):
        start(panels, manager, model=demo_model, version=1, scope="everything")
    with django_capture_on_commit_callbacks(execute=True):
        start(panels, manager, model=demo_model, version=1)
    with pytest.raises(Conflict):  # the first is still waiting in the queue
        start(panels, manager, model=demo_model, alias="production")
    # An annotator may not start one; another organization's model is not found.
    with pytest.raises(Forbidden):
        start(panels, tenant.user(Role.ANNOTATOR), model=demo_model, version=1)
    other = make_tenant("Other")
    with pytest.raises(NotFound):
        start(other.project, other.user(Role.OWNER), model=demo_model, version=1)


def test_a_version_not_ready_does_not_run(
    panels: Project, manager: Any, demo_model: DetectionModel, queued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    ModelVersion.objects.filter(model=demo_model).update(state=VersionState.FAILED)
    with pytest.raises(Conflict):
        preannotation.start_preannotation(panels, manager, model=demo_model, version=1)


def test_new_tasks_are_pre_annotated_on_import(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    mapping.save_project_model(panels, demo_model, manager, on_import="production")
    images = [
        dataclasses.replace(checked_image(name, data), name=f"new-{name}")
        for name, data, _ in defect_images(2, seed=SEED + 50)
    ]
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        new = services.create_uploaded_tasks(panels, images[:1])
        new += services.create_uploaded_tasks(panels, images[1:])  # joins the waiting job
    jobs = Job.objects.filter(project=panels, kind=preannotation.KIND)
    assert jobs.count() == 1
    drain()
    job = jobs.get()
    assert job.state == JobState.SUCCEEDED, job.error
    assert sorted(row.task_id for row in predictions(panels)) == sorted(task.pk for task in new)
    # An alias that no longer names a ready version: the import goes on without a job.
    registry.delete_alias(demo_model, manager, "production")
    services.create_uploaded_tasks(panels, [checked_image("late.jpg", images[0].data)])
    assert jobs.count() == 1


# ---------------------------------------------------------------------------- the API


def test_the_api_shows_and_changes_the_mapping_and_starts_a_job(
    panels: Project, manager: Any, demo_model: DetectionModel, tenant: Tenant, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    client = client_for(manager)
    labels = {label.name: label.pk for label in panels.labels.all()}
    answer = client.get(f"/api/projects/{panels.pk}/models/")
    assert answer.status_code == 200, answer.content
    (shown,) = answer.json()
    assert shown["classes"] == {
        "scratch": labels["Scratch"],
        "dent": labels["dent"],
        "stain": labels["stain"],
    }
    assert (shown["tile"], shown["on_import"], shown["aliases"]) == (False, "", ["production"])
    address = f"/api/projects/{panels.pk}/models/{demo_model.pk}/"
    changed = client.put(
        address, {"classes": {"stain": None}, "tile": True, "on_import": "production"},
        format="json",
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["classes"]["stain"] is None and changed.json()["tile"] is True
    assert client.put(address, {"classes": {"crack": 1}}, format="json").status_code == 400
    assert client.put(address, {"on_import": "nightly"}, format="json").status_code == 400
    # Annotators read, and may not change or start anything.
    annotator = client_for(tenant.user(Role.ANNOTATOR))
    assert annotator.get(f"/api/projects/{panels.pk}/models/").status_code == 200
    assert annotator.put(address, {"tile": False}, format="json").status_code == 403
    body = {"model": demo_model.pk, "alias": "production", "scope": "unlabeled"}
    start = f"/api/projects/{panels.pk}/preannotate/"
    assert annotator.post(start, body, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(start, body, format="json")
    assert started.status_code == 202, started.content
    job = started.json()
    assert job["kind"] == "preannotate"
    assert client.post(start, body, format="json").status_code == 409  # still waiting
    drain()
    finished = client.get(f"/api/jobs/{job['id']}/").json()
    assert finished["state"] == "succeeded" and finished["result"]["tasks"] == PANELS
    assert client.post(start, {"model": demo_model.pk}, format="json").status_code == 400


def test_another_organization_sees_nothing(
    panels: Project, demo_model: DetectionModel
) -> None:  # fmt: skip
    other = make_tenant("Other")
    client = client_for(other.user(Role.OWNER))
    assert client.get(f"/api/projects/{panels.pk}/models/").status_code == 404
    own = f"/api/projects/{other.project.pk}/"
    assert (
        client.put(f"{own}models/{demo_model.pk}/", {"tile": True}, format="json").status_code
        == 404
    )
    body = {"model": demo_model.pk, "version": 1}
    assert client.post(f"{own}preannotate/", body, format="json").status_code == 404
    assert client.get(f"{own}models/").json() == []


def test_a_proposal_decided_while_its_part_runs_is_kept(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The annotator accepts a proposal after the job read the task and before it writes the
    part: the job sees the decision (it locks the tasks, as a save does) and keeps the row."""
    run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    decided = next(row for row in predictions(panels) if row.shapes)
    real_store = preannotation._store

    def store(*args: Any) -> None:
        if not Prediction.objects.get(pk=decided.pk).task.has_annotation:
            workflow.save_annotation(
                decided.task, tenant.user(Role.ANNOTATOR), base_version=None,
                shapes=[decided.shapes[0]],
                proposals=[{"prediction": decided.pk, "index": 0, "fate": "accepted"}],
                submit=True,
            )  # fmt: skip
        real_store(*args)

    monkeypatch.setattr(preannotation, "_store", store)
    registry.update_version(demo_model.versions.get(), manager, conf=0.99)
    job = run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    assert job.result["decided_kept"] == 1
    assert Prediction.objects.get(pk=decided.pk).shapes == decided.shapes


def test_a_canvas_opened_before_a_rerun_saves_without_the_gone_proposals_fates(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any, tenant: Tenant,
) -> None:  # fmt: skip
    """The canvas showed prediction P; pre-annotating again replaced it by a new row; the save
    names P: the annotation is saved, P's fates are left out (they would otherwise be read as
    fates of the new shapes), and the new proposals are still undecided."""
    run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    shown = next(row for row in predictions(panels) if row.shapes)
    run(panels, manager, demo_model, drain, django_capture_on_commit_callbacks)
    assert not Prediction.objects.filter(pk=shown.pk).exists()
    annotation = workflow.save_annotation(
        shown.task, tenant.user(Role.ANNOTATOR), base_version=None, shapes=[shown.shapes[0]],
        proposals=[{"prediction": shown.pk, "index": 0, "fate": "accepted"}],
    )  # fmt: skip
    version = annotation.versions.get(version=annotation.version)
    assert version.proposal_fates == []
    assert len(version.shapes) == 1
