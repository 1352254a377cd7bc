"""The jobs page: live progress while something runs, speed and errors, cancel and retry."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from defectlab.jobs.models import Job, JobState
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.jobs.test_api import make_job
from tests.web.test_pages import signed_in


def test_a_running_job_shows_its_bar_speed_and_failures_and_the_table_polls(tenant: Tenant) -> None:
    make_job(
        tenant,
        state=JobState.RUNNING,
        done=40,
        failed=2,
        total=160,
        started_at=timezone.now() - timedelta(seconds=20),
    )
    page = signed_in(tenant.user(Role.OWNER)).get(f"/o/{tenant.organization.pk}/jobs/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Import from URLs" in html and "40 / 160" in html and "2 failed" in html
    assert 'aria-valuenow="25.0"' in html and "/s" in html
    assert 'hx-trigger="every 2s"' in html  # follows the job live


def test_the_table_stops_polling_when_every_job_has_finished(tenant: Tenant) -> None:
    make_job(tenant, state=JobState.FAILED, error="The address 10.0.0.5 is private.")
    client = signed_in(tenant.user(Role.OWNER))
    fragment = client.get(f"/o/{tenant.organization.pk}/jobs/", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert html.startswith('<tbody id="job-rows">')
    assert "hx-trigger" not in html and "The address 10.0.0.5 is private." in html
    assert "Retry" in html


def test_the_page_speaks_chinese(tenant: Tenant) -> None:
    make_job(tenant, state=JobState.QUEUED)
    html = (
        signed_in(tenant.user(Role.OWNER), "zh-hans")
        .get(f"/o/{tenant.organization.pk}/jobs/")
        .content.decode()
    )
    assert "后台任务" in html
    assert "从网址导入" in html and "排队中" in html


def test_the_starter_cancels_and_someone_else_without_rights_cannot(tenant: Tenant) -> None:
    job = make_job(tenant, role=Role.ANNOTATOR, state=JobState.RUNNING)
    reviewer = signed_in(tenant.user(Role.REVIEWER))
    assert "Cancel" not in reviewer.get(f"/o/{tenant.organization.pk}/jobs/").content.decode()
    refused = reviewer.post(f"/jobs/{job.pk}/cancel/", follow=True)
    assert "Your role does not allow this." in refused.content.decode()
    assert not Job.objects.get(pk=job.pk).cancel_requested
    signed_in(tenant.user(Role.ANNOTATOR)).post(f"/jobs/{job.pk}/cancel/")
    assert Job.objects.get(pk=job.pk).cancel_requested
