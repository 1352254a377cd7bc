"""A job whose worker is killed on every attempt stops at DEFECTLAB_JOB_MAX_ATTEMPTS: each
delivery is counted on the Job row when a worker takes it (a SIGKILL leaves nothing else
behind), and the delivery past the limit fails the job with a clear error and is acked. Both
brokers, real worker processes, the real test database (hence transaction=True)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from defectlab.jobs import queue
from defectlab.jobs.broker import SQLiteBroker
from defectlab.jobs.models import Job, JobState
from defectlab.tenancy.models import Role
from defectlab.transfer.urlimport import start_url_import
from tests.conftest import Tenant
from tests.jobs.brokers import BROKERS, dead_letter_count
from tests.jobs.processes import WorkerProcess, crash_worker, wait_until
from tests.loopback import Loopback

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.parametrize("kind", BROKERS)]

LIMIT = 3


class Hanging:
    """Answers nothing until the test ends: every attempt is still running when it is killed.
    Counts the requests, i.e. the attempts that really ran."""

    def __init__(self) -> None:
        self.hits = 0
        self.release = threading.Event()
        hanging = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hanging.hits += 1
                hanging.release.wait(120)
                self.send_error(503)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Loopback(Handler)
        self.port = self.server.port

    def close(self) -> None:
        self.release.set()
        self.server.close()


@pytest.fixture
def hanging_server() -> Iterator[Hanging]:
    server = Hanging()
    yield server
    server.close()


@pytest.fixture
def worker(kind: str, tmp_path: Path, settings: Any) -> Iterator[WorkerProcess]:
    settings.JOB_MAX_ATTEMPTS = LIMIT
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the hanging server is on loopback
    with crash_worker(kind, tmp_path, settings) as process:
        process.env["DEFECTLAB_JOB_MAX_ATTEMPTS"] = str(LIMIT)
        process.env["DEFECTLAB_FETCH_ALLOWLIST"] = "127.0.0.1/32"
        yield process


def messages_left(settings: Any) -> int:
    broker = queue.broker()
    if isinstance(broker, SQLiteBroker):
        return broker.pending(settings.JOB_QUEUE)
    main, _delayed, _dead = broker.get_queue_message_counts(settings.JOB_QUEUE)  # type: ignore[attr-defined]
    return int(main)


def test_a_job_killed_on_every_attempt_stops_exactly_at_the_limit(
    tenant: Tenant, hanging_server: Hanging, worker: WorkerProcess, settings: Any
) -> None:
    owner = tenant.user(Role.OWNER)
    port = hanging_server.port
    job = start_url_import(tenant.project, [f"http://127.0.0.1:{port}/panel.png"], owner)

    for attempt in range(1, LIMIT + 1):
        worker.start()
        # The handler is fetching: this attempt is in the middle of its work.
        wait_until(lambda n=attempt: hanging_server.hits == n, 90, f"attempt {attempt}", worker)
        row = Job.objects.get(pk=job.pk)
        assert (row.state, row.attempts) == (JobState.RUNNING, attempt)
        worker.kill()

    worker.start()  # gets the message once more: past the limit, so it fails the job instead
    wait_until(
        lambda: Job.objects.get(pk=job.pk).state == JobState.FAILED, 90, "the job to fail", worker
    )
    worker.stop()  # a clean stop would give back any message still held: none is
    job.refresh_from_db()
    assert job.attempts == LIMIT and hanging_server.hits == LIMIT  # no fourth run
    assert job.error == f"Stopped after {LIMIT} attempts: the worker stopped while running it."
    assert job.finished_at is not None
    # Acked: neither left to come back nor dead-lettered.
    assert messages_left(settings) == 0
    assert dead_letter_count(queue.broker(), settings.JOB_QUEUE) == 0
    assert "stopped after 3 attempts" in worker.output()
