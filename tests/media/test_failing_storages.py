"""Storages that hang or refuse: a hanging store never holds the web's threads or a cancelled
sync, and a store that refuses for good says why at once, in plain words, where people look.

A hanging store is `BlackHole`: a loopback TCP server that accepts and never answers. The tests
count the connections it was offered (never elapsed time): a request answered "at once" is one
that did not reach it. Permanent refusals come from the loopback S3 server (`loopback_only`)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connections as db_connections
from django.test import Client

from defectlab.jobs.models import Job, JobState
from defectlab.jobs.queue import RetryLater
from defectlab.jobs.runner import run_job
from defectlab.labeling.models import Task
from defectlab.media import breaker, connections
from defectlab.media.models import StorageConnection
from defectlab.media.references import ImageRef
from defectlab.media.services import signed_url
from defectlab.tenancy.models import Role
from defectlab.transfer.sync import start_sync
from tests.conftest import Tenant, client_for
from tests.media.conftest import ACCESS_KEY, SECRET_KEY
from tests.media.s3server import BlackHole, LoopbackS3
from tests.media.storages import allow_loopback, clear_caches, make_connection, png, put, run
from tests.web.test_pages import signed_in

pytestmark = [pytest.mark.usefixtures("loopback_only")]

fresh_caches = pytest.fixture(autouse=True)(clear_caches)


@pytest.fixture(autouse=True)
def loopback_open(settings: Any) -> None:
    """The test stores are on loopback, which only the operator's setting opens."""
    allow_loopback(settings)


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    server = BlackHole()
    yield server
    server.close()


def hanging_source(tenant: Tenant, hole: BlackHole, **changes: Any) -> StorageConnection:
    return connections.create_connection(
        tenant.project,
        tenant.user(Role.OWNER),
        role="source",
        secret_key=SECRET_KEY,
        **{
            "name": "line 3 camera",
            "endpoint_url": hole.url(),
            "bucket": "lab",
            "access_key": ACCESS_KEY,
            "media_mode": "proxy",
            **changes,
        },
    )


def task_in(storage: StorageConnection, key: str) -> Task:
    """A task synced from ``storage`` earlier, when it still answered."""
    return Task.objects.create(
        organization_id=storage.organization_id,
        project_id=storage.project_id,
        image=str(ImageRef.in_storage(storage.pk, key)),
        file_name=key.rpartition("/")[2],
    )


# --- a store that hangs -------------------------------------------------------------------------


@pytest.mark.django_db
def test_once_the_breaker_opens_images_from_a_hanging_store_answer_at_once(
    tenant: Tenant, hole: BlackHole, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.S3_INTERACTIVE_TIMEOUT = 0.5
    settings.S3_BREAKER_FAILURES = 3
    settings.S3_BREAKER_SECONDS = 600
    storage = hanging_source(tenant, hole)
    images = [task_in(storage, f"cam/{index}.png") for index in range(5)]
    browser = client_for(None)
    answers = [browser.get(signed_url(task.pk, "image")) for task in images]
    answers.append(browser.get(signed_url(images[0].pk, "thumb")))  # not cached yet
    # Three waited for the store, each once (no retry), and said how long they waited …
    assert [answer.status_code for answer in answers[:3]] == [502, 502, 502]
    assert "did not answer within 0.5 seconds" in answers[0].json()["error"]["message"]
    # … then the breaker answered without asking it, with the last reason.
    assert [answer.status_code for answer in answers[3:]] == [503, 503, 503]
    refusal = answers[3].json()["error"]
    assert refusal["code"] == "storage_unavailable"
    assert "line 3 camera" in refusal["message"] and "0.5 seconds" in refusal["message"]
    assert hole.accepted == 3
    # After the pause one request tries the store again; it still hangs, so the next is
    # answered at once again. (The breaker's clock is moved on: no test waits 10 minutes.)
    later = time.monotonic() + 601
    monkeypatch.setattr(breaker, "time", SimpleNamespace(monotonic=lambda: later))
    assert browser.get(signed_url(images[4].pk, "image")).status_code == 502
    assert browser.get(signed_url(images[4].pk, "image")).status_code == 503
    assert hole.accepted == 4


@pytest.mark.django_db(transaction=True)
def test_a_hanging_store_holds_only_a_few_threads_and_other_requests_are_answered(
    tenant: Tenant, hole: BlackHole, settings: Any
) -> None:
    settings.S3_INTERACTIVE_TIMEOUT = 120  # the store hangs for the whole test
    settings.S3_CALLS_PER_STORAGE = 2
    storage = hanging_source(tenant, hole)
    urls = [signed_url(task_in(storage, f"cam/{index}.png").pk, "image") for index in range(16)]
    answered: list[int] = []
    lock = threading.Condition()

    def show(url: str) -> int:
        try:
            status = Client().get(url).status_code
        finally:
            db_connections.close_all()  # this thread's own
        with lock:
            answered.append(status)
            lock.notify_all()
        return status

    # A page of 16 images at once, each request on its own thread (as a web server would).
    with ThreadPoolExecutor(16) as browsers:
        pending = [browsers.submit(show, url) for url in urls]
        with lock:
            lock.wait_for(lambda: len(answered) >= 14, timeout=60)
        hole.wait_for(2)
        # While two requests still hang in the store, the rest of the app answers.
        projects = signed_in(tenant.user(Role.ANNOTATOR)).get("/api/projects/")
        still_hanging = sum(not future.done() for future in pending)
        held = hole.accepted
        hole.close()  # the store goes away: the two hanging requests end
        statuses = sorted(future.result() for future in pending)
    assert projects.status_code == 200
    assert held == 2 and still_hanging == 2
    assert statuses == [502, 502] + [503] * 14


@pytest.mark.django_db(transaction=True)
def test_a_sync_against_a_hanging_store_stops_when_cancelled(
    tenant: Tenant, hole: BlackHole
) -> None:
    storage = hanging_source(tenant, hole)
    job = start_sync(storage, tenant.user(Role.MANAGER))

    def work() -> None:
        try:
            run_job(job.pk)
        finally:
            db_connections.close_all()  # this thread's own

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    assert hole.wait_for(1)  # the sync is listing the bucket, which never answers
    cancelled = client_for(tenant.user(Role.MANAGER)).post(f"/api/jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 200, cancelled.content
    worker.join(timeout=60)
    stopped = not worker.is_alive()
    hole.close()
    assert stopped, "the cancelled sync still waits for the store"
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    assert Task.objects.filter(project=tenant.project).count() == len(tenant.tasks)


# --- a store that refuses for good --------------------------------------------------------------


def failed_sync(tenant: Tenant, storage: StorageConnection) -> Job:
    return run(start_sync(storage, tenant.user(Role.MANAGER)).pk)


@pytest.mark.django_db
def test_permanent_refusals_fail_the_sync_at_once_and_say_why_on_the_storages_page(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 5
    put(s3_server, bucket, {"a.png": png(2, 2)})
    cases = {
        "no such bucket": (
            make_connection(s3_server, "no-such-bucket", tenant, name="missing"),
            "There is no bucket named no-such-bucket",
        ),
        "https to a plain http port": (
            make_connection(
                s3_server,
                bucket,
                tenant,
                name="tls",
                endpoint_url=s3_server.url().replace("http://", "https://"),
            ),
            "The secure (TLS) connection to 127.0.0.1 failed",
        ),
        "wrong secret key": (
            make_connection(s3_server, bucket, tenant, name="keys", secret_key="not-the-secret"),
            "The storage did not accept the access key and secret key.",
        ),
    }
    jobs = {case: failed_sync(tenant, cases[case][0]) for case in list(cases)[:2]}
    with LoopbackS3.iam_checks():  # moto checks keys only then
        jobs["wrong secret key"] = failed_sync(tenant, cases["wrong secret key"][0])
    page = signed_in(tenant.user(Role.MANAGER)).get(f"/projects/{tenant.project.pk}/storages/")
    html = page.content.decode()
    for case, (storage, words) in cases.items():
        job = jobs[case]
        assert (job.state, job.attempts) == (JobState.FAILED, 1), case  # no retries
        assert job.error.startswith(words), job.error
        storage.refresh_from_db()
        assert storage.last_error == job.error and storage.last_error_at is not None
        assert words in html, case
    assert "Error" not in "".join(job.error for job in jobs.values())  # no ClientError, SSLError…


@pytest.mark.django_db
def test_a_passing_failure_is_retried_and_says_why_in_the_users_language(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    settings.JOB_MAX_ATTEMPTS = 5
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the store is down, it may come back
    storage = make_connection(s3_server, bucket, tenant, endpoint_url=f"http://127.0.0.1:{port}")
    manager = tenant.user(Role.MANAGER)
    manager.language = "zh-hans"
    manager.save()
    job = start_sync(storage, manager)
    with pytest.raises(RetryLater):
        run_job(job.pk)
    job.refresh_from_db()
    storage.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.error.startswith("127.0.0.1 拒绝了端口") and "Error" not in job.error, job.error
    assert storage.last_error == job.error
    # The store is back (here: moved, and its address corrected): the retry works and the
    # reason is gone.
    connections.update_connection(storage, {"endpoint_url": s3_server.url()})
    assert run(job.pk).state == JobState.SUCCEEDED
    storage.refresh_from_db()
    assert storage.last_error == "" and storage.last_error_at is None


@pytest.mark.django_db
def test_head_of_a_proxied_image_answers_like_get_without_a_body(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    data = png(30, 20)
    storage = make_connection(s3_server, bucket, tenant, media_mode="proxy")
    put(s3_server, bucket, {"cam/a.png": data})
    url = signed_url(task_in(storage, "cam/a.png").pk, "image")
    head = client_for(None).head(url)
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(data)) and head["Content-Type"] == "image/png"
    assert head["Accept-Ranges"] == "bytes" and head.content == b""
