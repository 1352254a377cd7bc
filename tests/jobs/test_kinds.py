"""Job kinds live in one registry: every kind an app can start is registered with a title in
both languages, and the pages, the API and the runner read a kind's title, handler and download
from there (a kind registered later shows up everywhere without touching them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation
from django.utils.translation import gettext_lazy

from defectlab.jobs import kinds
from defectlab.jobs.kinds import JobKind
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import Progress, run_job
from defectlab.jobs.services import start_job
from defectlab.tenancy.models import Role
from defectlab.transfer import datasetimport, exports, sync, urlimport
from tests.conftest import Tenant, client_for
from tests.web.test_pages import signed_in

pytestmark = pytest.mark.django_db

# The kinds the apps start (each is the constant its start_* function passes to start_job).
STARTED = {urlimport.KIND, exports.KIND, datasetimport.KIND, sync.SYNC_KIND, sync.WRITE_KIND}


def test_every_kind_that_can_be_started_is_registered_with_a_title_in_both_languages() -> None:
    assert set(kinds.KINDS) >= STARTED
    for name in STARTED:
        kind = kinds.KINDS[name]
        assert kinds.handler(name) is kind.handler  # the runner runs what the registry names
        with translation.override("en"):
            english = kinds.title(name)
        with translation.override("zh-hans"):
            chinese = kinds.title(name)
        assert english and english != name  # a title for people, not the stored name
        assert chinese and chinese != english, f"{name} has no Chinese title"
    # Only an export leaves a file; only a URL import keeps per-item results.
    assert {name for name in STARTED if kinds.has_download(name)} == {exports.KIND}
    assert {name for name in STARTED if kinds.has_items(name)} == {urlimport.KIND}


@pytest.fixture
def scratch() -> Iterator[JobKind]:
    """A kind no page or API knows by name, registered as an app would."""

    def handle(job: Job, progress: Progress) -> dict[str, Any]:
        return {"ran": True}

    kind = kinds.register(JobKind("scratch", gettext_lazy("Dataset import"), handle, download=True))
    yield kind
    del kinds.KINDS["scratch"]


def test_pages_and_the_api_name_a_newly_registered_kind_by_its_title(
    tenant: Tenant, scratch: JobKind
) -> None:
    owner = tenant.user(Role.OWNER)
    job = start_job(tenant.organization, "scratch", user=owner, project=tenant.project)
    run_job(job.pk)  # the runner finds its handler in the registry
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.result == {"ran": True}

    html = signed_in(owner, "zh-hans").get(f"/o/{tenant.organization.pk}/jobs/").content.decode()
    assert "数据集导入" in html and ">scratch<" not in html
    detail = signed_in(owner, "zh-hans").get(f"/jobs/{job.pk}/").content.decode()
    assert "数据集导入" in detail

    api = client_for(owner)
    body = api.get(f"/api/jobs/{job.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert (body["kind"], body["title"]) == ("scratch", "数据集导入")
    assert api.get(f"/api/jobs/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()["title"] == (
        "Dataset import"
    )


@pytest.fixture
def picky() -> Iterator[JobKind]:
    """A kind that will not run a job again once what it ran on is gone (``params["gone"]``)."""
    from django.utils.translation import gettext

    def handle(job: Job, progress: Progress) -> dict[str, Any]:
        return {}

    def refusal(job: Job) -> str | None:
        return gettext("The model version was deleted.") if job.params.get("gone") else None

    kind = kinds.register(
        JobKind("picky", gettext_lazy("Dataset import"), handle, retry_refusal=refusal)
    )
    yield kind
    del kinds.KINDS["picky"]


def test_a_kind_refuses_to_retry_a_job_with_its_reason_in_the_api_and_on_the_pages(
    tenant: Tenant, picky: JobKind, django_capture_on_commit_callbacks: Any
) -> None:
    manager = tenant.user(Role.MANAGER)
    gone = Job.objects.create(
        organization=tenant.organization, kind="picky", state=JobState.FAILED, params={"gone": 1}
    )
    kept = Job.objects.create(organization=tenant.organization, kind="picky", state=JobState.FAILED)
    api = client_for(manager)
    for language, reason in (
        ("en", "The model version was deleted."),
        ("zh-hans", "模型版本已被删除。"),
    ):
        answer = api.post(f"/api/jobs/{gone.pk}/retry/", HTTP_ACCEPT_LANGUAGE=language)
        assert answer.status_code == 409
        assert answer.json()["error"] == {"code": "not_retryable", "message": reason}
    gone.refresh_from_db()
    assert gone.state == JobState.FAILED
    # The pages show the reason where Retry would be, and Retry only for the other job.
    page = signed_in(manager, "zh-hans")
    rows = page.get(f"/o/{tenant.organization.pk}/jobs/").content.decode()
    assert rows.count(">重试</button>") == 1 and "模型版本已被删除。" in rows
    assert f'action="/jobs/{kept.pk}/retry/"' in rows
    assert f'action="/jobs/{gone.pk}/retry/"' not in rows
    detail = page.get(f"/jobs/{gone.pk}/").content.decode()
    assert 'id="retry-refusal"' in detail and "/retry/" not in detail
    refused = page.post(f"/jobs/{gone.pk}/retry/", follow=True).content.decode()
    assert "模型版本已被删除。" in refused
    # A job the kind does not refuse is retried as before.
    with django_capture_on_commit_callbacks():
        answer = api.post(f"/api/jobs/{kept.pk}/retry/")
    assert answer.status_code == 200 and answer.json()["state"] == JobState.QUEUED
