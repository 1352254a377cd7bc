"""The jobs API: each organization sees its own jobs; the starter or a manager steers them."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.jobs.models import Job, JobState
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, client_for

pytestmark = pytest.mark.django_db


def make_job(tenant: Tenant, role: str = Role.ANNOTATOR, **fields: Any) -> Job:
    return Job.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        kind="url_import",
        started_by=tenant.user(role),
        **fields,
    )


def test_the_list_shows_only_the_callers_organizations_jobs(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = make_job(tenant, done=3, total=10)
    make_job(other_tenant)
    body = client_for(tenant.user(Role.ANNOTATOR)).get("/api/jobs/").json()
    assert [job["id"] for job in body["results"]] == [mine.pk]
    assert body["results"][0]["done"] == 3 and body["results"][0]["total"] == 10
    assert body["results"][0]["started_by"] == tenant.user(Role.ANNOTATOR).email
    filtered = client_for(tenant.user(Role.OWNER)).get(
        f"/api/jobs/?project={tenant.project.pk + 999}"
    )
    assert filtered.json()["results"] == []


def test_pages_follow_the_cursor(tenant: Tenant) -> None:
    jobs = [make_job(tenant) for _ in range(55)]
    client = client_for(tenant.user(Role.OWNER))
    first = client.get("/api/jobs/").json()
    second = client.get(f"/api/jobs/?cursor={first['next_cursor']}").json()
    seen = [job["id"] for job in first["results"] + second["results"]]
    assert seen == sorted((job.pk for job in jobs), reverse=True)
    assert second["next_cursor"] is None


def test_the_starter_may_cancel_their_job_and_others_need_to_manage_projects(
    tenant: Tenant,
) -> None:
    job = make_job(tenant, role=Role.ANNOTATOR)
    refused = client_for(tenant.user(Role.REVIEWER)).post(f"/api/jobs/{job.pk}/cancel/")
    assert refused.status_code == 403
    done = client_for(tenant.user(Role.ANNOTATOR)).post(f"/api/jobs/{job.pk}/cancel/")
    assert done.status_code == 200 and done.json()["state"] == JobState.CANCELLED
    again = client_for(tenant.user(Role.MANAGER)).post(f"/api/jobs/{job.pk}/cancel/")
    assert again.status_code == 409


def test_a_manager_retries_a_failed_job(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    job = make_job(tenant, state=JobState.FAILED, error="timed out")
    with django_capture_on_commit_callbacks() as sent:
        response = client_for(tenant.user(Role.MANAGER)).post(f"/api/jobs/{job.pk}/retry/")
    assert response.status_code == 200 and response.json()["state"] == JobState.QUEUED
    assert len(sent) == 1  # the message goes out after the commit
    running = client_for(tenant.user(Role.MANAGER)).post(f"/api/jobs/{job.pk}/retry/")
    assert running.status_code == 409
