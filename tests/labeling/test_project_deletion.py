"""Deleting a project: it answers 404 at once; a job removes its tasks and their files a chunk
at a time, then the project, and can run again after a crash."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import run_job
from defectlab.labeling import jobs as labeling_jobs
from defectlab.labeling import services
from defectlab.labeling.models import Project, Task
from defectlab.media.storage import default_storage
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, annotate, client_for, make_tasks


def test_a_deleted_project_is_gone_at_once_and_its_job_removes_the_rest(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    monkeypatch.setattr(labeling_jobs, "CHUNK", 2)  # several chunks of the 5 tasks
    owner = tenant.user(Role.OWNER)
    project = tenant.project
    extra = make_tasks(project, 2)
    annotate(tenant, extra[0])
    images = [task.image for task in Task.objects.filter(project=project)]
    assert all(default_storage().exists(image) for image in images)
    api = client_for(owner)

    answer = api.delete(f"/api/projects/{project.pk}/")
    assert answer.status_code == 202 and answer.json()["kind"] == "project_delete"
    # Gone for everyone before the job ran: the API, the pages, the organization's list.
    assert api.get(f"/api/projects/{project.pk}/").status_code == 404
    assert project.pk not in [p["id"] for p in api.get("/api/projects/").json()]
    assert Task.objects.filter(project=project).exists()  # the job's work

    job_id = answer.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):  # files go once a chunk commits
        run_job(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.SUCCEEDED and job.done == len(images)
    assert job.project_id is None  # the job outlives the project it deleted
    assert not Project.all_objects.filter(pk=project.pk).exists()
    assert not Task.objects.filter(project_id=project.pk).exists()
    assert not any(default_storage().exists(image) for image in images)


def test_a_deletion_interrupted_midway_finishes_when_run_again(tenant: Tenant) -> None:
    owner = tenant.user(Role.OWNER)
    job = services.delete_project(tenant.project, actor=owner)
    # As if the worker died after the first chunk: some tasks are gone, the project is not.
    first = Task.objects.filter(project=tenant.project).order_by("id").first()
    assert first is not None
    services.delete_tasks(tenant.project, [first.pk])
    run_job(job.pk)
    assert not Project.all_objects.filter(pk=tenant.project.pk).exists()
    # Delivered once more (a duplicate message): nothing left to do, nothing fails.
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED, attempts=0)
    run_job(job.pk)
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def test_only_managers_delete_a_project(tenant: Tenant) -> None:
    annotator = client_for(tenant.user(Role.ANNOTATOR))
    assert annotator.delete(f"/api/projects/{tenant.project.pk}/").status_code == 403
    assert Project.objects.filter(pk=tenant.project.pk).exists()
