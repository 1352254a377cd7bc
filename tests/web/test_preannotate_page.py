"""A project's pre-annotation page: a manager picks a version or an alias and the tasks, and
starts a job (the job page then shows what it ran and did); the class → label mapping, tiling
and "on import" are saved there, a refusal shown beside its form. Annotators are sent back;
another organization's project is 404. Without models, the page says where to add one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from defectlab.inference import registry
from defectlab.inference.demo import model_bytes
from defectlab.inference.models import (
    DetectionModel,
    ModelAlias,
    ModelVersion,
    ProjectModel,
    VersionState,
)
from defectlab.jobs.models import Job, JobState
from defectlab.labeling.models import Prediction
from defectlab.tenancy.models import Organization, Role
from tests.conftest import Tenant, annotate, make_tenant, signed_in

pytestmark = pytest.mark.django_db


def fake_model(organization: Organization, name: str = "Surface") -> DetectionModel:
    """A model with a ready version 1 (alias production) and a failed version 2, classes
    crack / scratch (no file: nothing here runs it)."""
    model = DetectionModel.objects.create(organization=organization, name=name)
    common: dict[str, Any] = {
        "organization": organization,
        "model": model,
        "sha256": "ab" * 32,
        "size": 1,
        "ir_version": 8,
        "opset": 17,
        "conf": 0.25,
        "iou": 0.7,
        "max_det": 300,
        "input_height": 640,
        "input_width": 640,
        "layout": "yolov8",
        "names": ["crack", "scratch"],
    }
    ready = ModelVersion.objects.create(
        number=1, state=VersionState.READY, file_key=f"m/{name}/1.onnx", **common
    )
    ModelVersion.objects.create(
        number=2, state=VersionState.FAILED, file_key=f"m/{name}/2.onnx", **common
    )
    ModelAlias.objects.create(
        organization=organization, model=model, name="production", version=ready
    )
    return model


def url(tenant: Tenant) -> str:
    return f"/projects/{tenant.project.pk}/preannotate/"


def test_a_manager_starts_an_alias_on_the_unlabeled_tasks(
    tenant: Tenant, queued: list[int]
) -> None:
    model = fake_model(tenant.organization)
    annotate(tenant, tenant.tasks[0])
    client = signed_in(tenant.user(Role.MANAGER))
    page = client.get(url(tenant))
    html = page.content.decode()
    assert page.status_code == 200
    assert '<option value="alias:production" selected>production (now v1)</option>' in html
    assert 'value="version:1"' in html and 'value="version:2"' not in html  # ready ones only
    assert "All (3 tasks)" in html and "Not yet labeled (2 tasks)" in html

    answer = client.post(
        url(tenant),
        {"action": "start", "model": model.pk, "run": "alias:production", "scope": "unlabeled"},
    )
    job = Job.objects.get(kind="preannotate")
    assert answer.status_code == 302 and answer["Location"] == f"/jobs/{job.pk}/"
    assert job.project_id == tenant.project.pk and job.started_by == tenant.user(Role.MANAGER)
    version = model.versions.get(number=1)
    assert job.params["version"] == version.pk and job.params["alias"] == "production"
    assert job.params["filter"] == {"has_annotation": "false"} and job.params["tile"] is False

    # The job page says what runs; the page lists the job.
    detail = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="preannotation-result"' in detail and "Surface</a> v1" in detail
    listed = client.get(url(tenant)).content.decode()
    assert f'id="job-{job.pk}"' in listed and 'hx-trigger="every 2s"' in listed


def test_a_version_with_the_task_tables_filter_and_tiling(
    tenant: Tenant, queued: list[int]
) -> None:
    model = fake_model(tenant.organization)
    client = signed_in(tenant.user(Role.OWNER))
    # The project page's button carries the table's filter here.
    project_page = client.get(f"/projects/{tenant.project.pk}/?status=new&sort=file_name")
    assert f"/projects/{tenant.project.pk}/preannotate/?status=new&amp;" in (
        project_page.content.decode()
    )
    html = client.get(f"{url(tenant)}?status=new").content.decode()
    assert 'name="scope" value="filter" checked' in html
    assert '<input type="hidden" name="status" value="new">' in html
    client.post(
        url(tenant),
        {
            "action": "start",
            "model": model.pk,
            "run": "version:1",
            "scope": "filter",
            "status": "new",
            "tile": "on",
        },
    )
    job = Job.objects.get(kind="preannotate")
    assert job.params["filter"] == {"status": "new"} and job.params["tile"] is True
    assert job.params["alias"] == "" and job.params["number"] == 1


def test_a_refused_start_is_shown_beside_the_form(tenant: Tenant, queued: list[int]) -> None:
    model = fake_model(tenant.organization)
    client = signed_in(tenant.user(Role.MANAGER), "zh-hans")
    form = {"action": "start", "model": model.pk, "run": "version:2", "scope": "all"}
    page = client.post(url(tenant), form)
    assert page.status_code == 200
    assert 'id="start-error"' in page.content.decode()
    assert "只有就绪的版本才能预标注" in page.content.decode()
    assert not Job.objects.filter(kind="preannotate").exists()


def test_the_mapping_tiling_and_on_import_are_saved(tenant: Tenant) -> None:
    model = fake_model(tenant.organization)
    client = signed_in(tenant.user(Role.MANAGER))
    html = client.get(url(tenant)).content.decode()
    # "scratch" goes to the label of the same name until someone says otherwise.
    scratch, dent = tenant.label, tenant.project.labels.get(name="dent")
    assert f'<option value="{scratch.pk}" selected>scratch</option>' in html
    answer = client.post(
        url(tenant),
        {
            "action": "mapping",
            "model": model.pk,
            "class:crack": str(dent.pk),
            "class:scratch": "none",
            "tile": "on",
            "on_import": "production",
        },
    )
    assert answer.status_code == 302
    row = ProjectModel.objects.get(project=tenant.project, model=model)
    assert row.classes == {"crack": dent.pk, "scratch": None}
    assert row.tile is True and row.on_import == "production"
    html = client.get(answer["Location"]).content.decode()
    assert f'<option value="{dent.pk}" selected>dent</option>' in html
    assert '<option value="none" selected>' in html
    assert '<option value="production" selected>' in html


def test_mapping_refusals_are_shown_beside_the_form(tenant: Tenant, other_tenant: Tenant) -> None:
    first, second = fake_model(tenant.organization), fake_model(tenant.organization, "Other")
    client = signed_in(tenant.user(Role.MANAGER))
    foreign = other_tenant.label.pk  # a label of another project
    page = client.post(
        url(tenant), {"action": "mapping", "model": first.pk, "class:crack": str(foreign)}
    )
    html = page.content.decode()
    assert page.status_code == 200 and 'id="mapping-error"' in html
    assert f"this project has no label {foreign}" in html
    assert not ProjectModel.objects.exists()
    # One model pre-annotates new tasks: a second is a conflict, said in the page.
    client.post(url(tenant), {"action": "mapping", "model": first.pk, "on_import": "production"})
    page = client.post(
        url(tenant), {"action": "mapping", "model": second.pk, "on_import": "production"}
    )
    assert "Another model already pre-annotates" in page.content.decode()
    assert ProjectModel.objects.get(on_import="production").model == first


def test_annotators_are_sent_back_and_another_organization_gets_404(
    tenant: Tenant, other_tenant: Tenant, queued: list[int]
) -> None:
    model = fake_model(tenant.organization)
    annotator = signed_in(tenant.user(Role.ANNOTATOR))
    for answer in (
        annotator.get(url(tenant)),
        annotator.post(url(tenant), {"action": "start", "model": model.pk, "run": "version:1"}),
    ):
        assert answer.status_code == 302 and answer["Location"] == f"/projects/{tenant.project.pk}/"
    assert not Job.objects.exists()
    project_page = annotator.get(f"/projects/{tenant.project.pk}/").content.decode()
    assert 'id="project-preannotate"' not in project_page
    stranger = signed_in(other_tenant.user(Role.OWNER))
    assert stranger.get(url(tenant)).status_code == 404
    assert stranger.post(url(tenant), {"action": "start"}).status_code == 404


def test_without_models_the_page_says_where_to_add_one(tenant: Tenant) -> None:
    html = signed_in(tenant.user(Role.MANAGER), "zh-hans").get(url(tenant)).content.decode()
    assert 'id="no-models"' in html
    assert f'href="/o/{tenant.organization.pk}/models/"' in html


def test_the_demo_model_runs_and_its_job_page_counts(
    tenant: Tenant, drain: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    manager = tenant.user(Role.MANAGER)
    model = registry.create_model(tenant.organization, manager, name="Demo detector")
    with django_capture_on_commit_callbacks(execute=True):
        registry.upload_version(model, manager, model_bytes(), file_name="demo.onnx")
    drain()
    client = signed_in(manager)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            url(tenant), {"action": "start", "model": model.pk, "run": "version:1", "scope": "all"}
        )
    drain()
    job = Job.objects.get(kind="preannotate")
    assert job.state == JobState.SUCCEEDED, job.error
    html = client.get(answer["Location"]).content.decode()
    assert '<dd id="preannotation-tasks">3</dd>' in html
    assert '<dd id="preannotation-predictions">3</dd>' in html
    assert Prediction.objects.filter(task__project=tenant.project).count() == 3


def test_a_jobs_failed_tasks_link_to_the_canvas(tenant: Tenant) -> None:
    model = fake_model(tenant.organization)
    task = tenant.tasks[1]
    job = Job.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        kind="preannotate",
        state=JobState.SUCCEEDED,
        params={"model": model.pk, "number": 1, "alias": "", "on_import": True},
        result={"model": "Surface", "version": 1, "alias": "", "tasks": 3, "predictions": 2,
                "shapes": 4, "decided_kept": 0, "failed": 1,
                "errors": [{"task": task.pk, "error": "The image cannot be read."}]},
        total=3, done=3, failed=1,
    )  # fmt: skip
    html = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/jobs/{job.pk}/").content.decode()
    assert f'<a href="/tasks/{task.pk}/annotate/">#{task.pk}</a>' in html
    assert "The image cannot be read." in html and "on import" in html
    assert '<dd id="preannotation-failed">1</dd>' in html


def test_a_backend_runs_from_the_page_even_without_models(
    tenant: Tenant, queued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    """An organization whose model is served elsewhere: the page offers its backends, and the
    job page names the backend (the job itself is tested in tests/inference/test_backends.py)."""
    from defectlab.inference import backends

    manager = tenant.user(Role.MANAGER)
    backend = backends.create_backend(
        tenant.organization, manager, name="SAM line 3", url="https://sam.example.com"
    )
    client = signed_in(manager, "zh-hans")
    html = client.get(url(tenant)).content.decode()
    assert 'id="no-models"' in html and 'id="backend-run"' in html and "SAM line 3" in html
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            url(tenant), {"action": "backend", "backend": backend.pk, "scope": "unlabeled"}
        )
    assert answer.status_code == 302, answer.content
    job = Job.objects.get(kind="preannotate")
    assert job.params["backend"] == backend.pk
    assert job.params["filter"] == {"has_annotation": "false"}
    assert "SAM line 3" in client.get(answer["Location"]).content.decode()
    # The same backend again while the first still waits: the refusal beside the form.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(url(tenant), {"action": "backend", "backend": backend.pk})
    assert again.status_code == 200 and 'id="backend-error"' in again.content.decode()
    # Another organization's backend is not offered, nor taken.
    other = make_tenant("Other")
    theirs = backends.create_backend(
        other.organization, other.user(Role.OWNER), name="Theirs", url="https://t.example.com"
    )
    refused = client.post(url(tenant), {"action": "backend", "backend": theirs.pk})
    assert 'id="backend-error"' in refused.content.decode()
    assert Job.objects.filter(kind="preannotate").count() == 1


def test_digits_that_are_not_ascii_are_refused_not_a_server_error(tenant: Tenant) -> None:
    from defectlab.inference import backends

    manager = tenant.user(Role.MANAGER)
    backends.create_backend(tenant.organization, manager, name="SAM", url="https://s.example.com")
    client = signed_in(manager)
    answer = client.post(url(tenant), {"action": "backend", "backend": "²"})
    assert answer.status_code == 200 and 'id="backend-error"' in answer.content.decode()
    model = fake_model(tenant.organization)
    answer = client.post(url(tenant), {"action": "start", "model": model.pk, "run": "version:²"})
    assert answer.status_code == 200 and 'id="start-error"' in answer.content.decode()
