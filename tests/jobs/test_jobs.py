"""The Job row through its states: progress, results, errors in the starter's language,
retries of passing failures, cancelling, and duplicate deliveries doing nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import models
from django.utils.translation import gettext as _

from defectlab.errors import Invalid, Unavailable
from defectlab.ingest.policy import FetchFailed
from defectlab.jobs import kinds, queue
from defectlab.jobs.models import Job, JobState
from defectlab.jobs.queue import RetryLater
from defectlab.jobs.runner import Progress, run_job
from defectlab.jobs.services import cancel_job, retry_job, start_job
from defectlab.jobs.worker import run_worker
from defectlab.media.breaker import StorageDown
from defectlab.tenancy.models import Role
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def behaviour() -> Iterator[dict[str, Any]]:
    """A handler for kind "test" whose behaviour each test sets."""
    plan: dict[str, Any] = {"runs": 0}

    def handle(job: Job, progress: Progress) -> dict[str, Any]:
        plan["runs"] += 1
        progress.total(job.params.get("steps", 3))
        for _step in range(job.params.get("steps", 3)):
            if "during" in plan:
                plan["during"](job)
            progress.step()
            if plan.get("report_each_step"):
                progress.flush()  # as if each step took longer than the report interval
        if "fail" in plan:
            raise plan["fail"]
        return {"sum": job.params.get("steps", 3)}

    kinds.register(kinds.JobKind("test", "Test", handle))
    yield plan
    del kinds.KINDS["test"]


def test_a_job_runs_to_success_with_its_progress_and_result(
    tenant: Tenant, behaviour: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        job = start_job(
            tenant.organization, "test", params={"steps": 4}, user=tenant.user(Role.OWNER)
        )
    # The message goes out only after the row is committed.
    assert callbacks and job.state == JobState.QUEUED
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert (job.done, job.total, job.attempts) == (4, 4, 1)
    assert job.result == {"sum": 4} and job.finished_at is not None
    run_job(job.pk)  # a duplicate delivery of a finished job does nothing
    assert behaviour["runs"] == 1


def test_a_refusal_fails_at_once_in_the_starters_language(
    tenant: Tenant, behaviour: dict[str, Any]
) -> None:
    owner = tenant.user(Role.OWNER)
    owner.language = "zh-hans"
    owner.save()
    behaviour["fail"] = Invalid("ignored")  # replaced below by a translated message

    def fail_translated(job: Job) -> None:
        behaviour["fail"] = Invalid(_("Not found."))

    behaviour["during"] = fail_translated
    job = start_job(tenant.organization, "test", user=owner)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.attempts == 1
    assert job.error == "未找到。"


def test_a_passing_failure_is_retried_then_fails_for_good(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 2
    behaviour["fail"] = ConnectionResetError("storage went away")
    job = start_job(tenant.organization, "test")
    with pytest.raises(RetryLater):
        run_job(job.pk)  # Dramatiq's Retries middleware sends it again, later
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and "storage went away" in job.error
    run_job(job.pk)  # the last attempt: no more retries, the job says why
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.attempts == 2
    assert job.error == "A connection or file error stopped the job: storage went away"


def test_an_unexpected_error_is_told_without_python_class_names(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 1
    owner = tenant.user(Role.OWNER)
    owner.language = "zh-hans"
    owner.save(update_fields=["language"])
    behaviour["fail"] = KeyError("label")
    job = start_job(tenant.organization, "test", user=owner)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "KeyError" not in job.error and "Error" not in job.error
    assert job.error == "任务因意外错误而停止（'label'）；详情见 worker 的日志。"


def test_cancelling_a_queued_job_stops_it_before_it_runs(
    tenant: Tenant, behaviour: dict[str, Any]
) -> None:
    job = cancel_job(start_job(tenant.organization, "test"))
    assert job.state == JobState.CANCELLED
    run_job(job.pk)
    assert behaviour["runs"] == 0


def test_cancelling_a_running_job_stops_it_at_its_next_report(
    tenant: Tenant, behaviour: dict[str, Any]
) -> None:
    job = start_job(tenant.organization, "test", params={"steps": 5})
    behaviour["report_each_step"] = True
    behaviour["during"] = lambda running: Job.objects.filter(pk=running.pk).update(
        cancel_requested=True
    )
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.done == 1


def test_a_failed_job_can_be_retried(tenant: Tenant, behaviour: dict[str, Any]) -> None:
    behaviour["fail"] = Invalid("bad input")
    job = start_job(tenant.organization, "test")
    run_job(job.pk)
    del behaviour["fail"]
    job = retry_job(Job.objects.get(pk=job.pk), None)
    assert job.state == JobState.QUEUED and job.error == ""
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempts == 1  # this run's attempts


def killed_attempt(job: Job) -> None:
    """What a worker killed mid-job leaves: the delivery counted, the row still running."""
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=models.F("attempts") + 1)


def test_a_job_whose_worker_keeps_dying_stops_at_the_limit_in_the_starters_language(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 3
    user = tenant.user(Role.OWNER)
    user.language = "zh-hans"
    user.save()
    job = start_job(tenant.organization, "test", user=user)
    for _attempt in range(3):
        killed_attempt(job)
    run_job(job.pk)  # the fourth delivery: not run, the job fails and the message is acked
    job.refresh_from_db()
    assert behaviour["runs"] == 0
    assert (job.state, job.attempts) == (JobState.FAILED, 3)
    assert job.error == "已尝试 3 次后停止：工作进程在运行该任务时停止了。"
    run_job(job.pk)  # yet another duplicate delivery changes nothing
    job.refresh_from_db()
    assert (job.state, job.attempts, behaviour["runs"]) == (JobState.FAILED, 3, 0)


def test_the_last_allowed_attempt_still_runs_and_a_retry_gets_all_attempts_again(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 2
    job = start_job(tenant.organization, "test")
    killed_attempt(job)
    run_job(job.pk)  # the second and last attempt
    job.refresh_from_db()
    assert (job.state, job.attempts, behaviour["runs"]) == (JobState.SUCCEEDED, 2, 1)

    job = start_job(tenant.organization, "test")
    killed_attempt(job)
    killed_attempt(job)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "Stopped after 2 attempts" in job.error
    job = retry_job(job, None)
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.attempts, behaviour["runs"]) == (JobState.SUCCEEDED, 1, 2)


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_started_job_through_the_embedded_queue(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any, tmp_path: Any
) -> None:
    settings.BROKER_URL = f"sqlite:///{tmp_path}/queue.sqlite3"
    queue.reset()
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(1,), kwargs={"stop": stop})
    worker.start()
    try:
        job = start_job(tenant.organization, "test", params={"steps": 2})
        queue.broker().join(queue.queue_name(), timeout=30_000)
    finally:
        stop.set()
        worker.join(30)
        queue.reset()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.result == {"sum": 2}


def test_a_retryable_refusal_is_tried_again_and_a_final_one_is_not(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any
) -> None:
    """A remote server that does not answer may answer later: its FetchFailed is retried like a
    passing failure (it used to fail the job at once); a 404 from it, or bad input, is final."""
    settings.JOB_MAX_ATTEMPTS = 3
    behaviour["fail"] = FetchFailed("connect", "http://127.0.0.1:9/a.png", "127.0.0.1")
    job = start_job(tenant.organization, "test")
    with pytest.raises(RetryLater):
        run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.attempts == 1
    assert job.error.startswith("Could not fetch http://127.0.0.1:9/a.png")
    del behaviour["fail"]  # the server is back
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempts == 2 and job.error == ""

    for final in (
        FetchFailed("http_status", "http://127.0.0.1:9/gone.png", "127.0.0.1", status=404),
        Invalid("The file is not a zip archive."),
    ):
        behaviour["fail"] = final
        job = start_job(tenant.organization, "test")
        run_job(job.pk)  # no RetryLater: the message is acked
        job.refresh_from_db()
        assert job.state == JobState.FAILED and job.attempts == 1
        assert job.error == final.message


def test_a_store_that_is_unavailable_is_retried_until_the_limit(
    tenant: Tenant, behaviour: dict[str, Any], settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 2
    behaviour["fail"] = StorageDown("The storage is not answering; try again in 30 seconds.")
    job = start_job(tenant.organization, "test")
    with pytest.raises(RetryLater):
        run_job(job.pk)
    run_job(job.pk)  # the last attempt fails for good, with the same words
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.attempts == 2
    assert job.error == "The storage is not answering; try again in 30 seconds."
    assert isinstance(behaviour["fail"], Unavailable) and behaviour["fail"].status == 503


def test_a_script_waits_for_a_job_with_one_request(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``?wait=`` holds the answer until the job has ended; the sleeps between looks are where
    the worker would finish it (here: the second look finds it done)."""
    from defectlab.jobs import api as jobs_api
    from tests.conftest import client_for

    owner = tenant.user(Role.OWNER)
    job = Job.objects.create(organization=tenant.organization, kind="export", started_by=owner)
    looks: list[float] = []

    def worker_meanwhile(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 2:
            Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, result={"key": "k"})

    monkeypatch.setattr(jobs_api.time, "sleep", worker_meanwhile)
    client = client_for(owner)
    answer = client.get(f"/api/jobs/{job.pk}/", {"wait": 30}).json()
    assert answer["state"] == "succeeded" and len(looks) == 2
    looks.clear()
    assert client.get(f"/api/jobs/{job.pk}/", {"wait": 30}).json()["state"] == "succeeded"
    assert looks == []  # an ended job answers at once
    assert client.get(f"/api/jobs/{job.pk}/").json()["state"] == "succeeded"


def test_a_wait_ends_with_the_job_as_it_is_when_the_time_is_up(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defectlab.jobs import api as jobs_api
    from tests.conftest import client_for

    owner = tenant.user(Role.OWNER)
    job = Job.objects.create(organization=tenant.organization, kind="export", started_by=owner)
    clock = [0.0]
    monkeypatch.setattr(jobs_api.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(
        jobs_api.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    answer = client_for(owner).get(f"/api/jobs/{job.pk}/", {"wait": 500}).json()
    assert answer["state"] == "queued"
    assert clock[0] == jobs_api.MAX_WAIT  # capped at a minute, however long was asked


def test_an_export_is_one_call_plus_a_wait(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    """What docs/api.md shows a script doing: POST the export (202, the job), GET the job with
    ``?wait=`` (the worker finishes it meanwhile: here, in the first sleep between looks), then
    GET the job's ``download_url``: the zip, with the images in it (the default)."""
    import io
    import zipfile

    from defectlab.jobs import api as jobs_api
    from tests.conftest import annotate, client_for

    for task in tenant.tasks:
        annotate(tenant, task)
    client = client_for(tenant.user(Role.MANAGER))
    with django_capture_on_commit_callbacks(execute=False):
        started = client.post(
            f"/api/projects/{tenant.project.pk}/export/", {"format": "yolo"}, format="json"
        )
    assert started.status_code == 202
    job = started.json()
    assert job["state"] == "queued" and job["download_url"] is None

    def worker_meanwhile(seconds: float) -> None:
        run_job(job["id"])

    monkeypatch.setattr(jobs_api.time, "sleep", worker_meanwhile)
    done = client.get(f"/api/jobs/{job['id']}/", {"wait": 60}).json()
    assert done["state"] == "succeeded"
    assert done["download_url"] == f"/api/jobs/{job['id']}/download/"
    response = client.get(done["download_url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    images = [name for name in archive.namelist() if name.startswith("images/")]
    assert len(images) == len(tenant.tasks) == done["result"]["images"]


def test_a_job_without_a_file_has_no_download_url(tenant: Tenant) -> None:
    from tests.conftest import client_for

    owner = tenant.user(Role.OWNER)
    job = Job.objects.create(
        organization=tenant.organization,
        kind="dataset_import",
        started_by=owner,
        state=JobState.SUCCEEDED,
        result={"key": "org/1/imports/job-1.zip"},
    )
    assert client_for(owner).get(f"/api/jobs/{job.pk}/").json()["download_url"] is None
    # An export that failed made no file either.
    job.kind, job.state = "export", JobState.FAILED
    job.save()
    assert client_for(owner).get(f"/api/jobs/{job.pk}/").json()["download_url"] is None
