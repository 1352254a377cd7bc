"""`/readyz` says when no job worker has been seen lately, wherever workers run: each
`defectlab worker` process keeps a heartbeat row in the database while it lives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from defectlab.jobs.liveness import Heartbeat
from defectlab.jobs.models import WorkerHeartbeat
from tests.jobs.processes import WorkerProcess, crash_worker, wait_for, wait_until

NOBODY = {"status": "unavailable", "worker": "no job worker seen in the last 3 s"}


def readyz() -> tuple[int, Any]:
    response = APIClient().get("/readyz")
    return response.status_code, response.json()


@pytest.mark.django_db
def test_readyz_wants_a_worker_seen_within_three_heartbeats(settings: Any) -> None:
    settings.WORKER_HEARTBEAT_SECONDS = 1
    assert readyz() == (503, NOBODY)
    now = timezone.now()
    beat = WorkerHeartbeat.objects.create(name="elsewhere:7:ab", started_at=now, last_seen=now)
    assert readyz() == (200, {"status": "ok"})
    WorkerHeartbeat.objects.filter(pk=beat.pk).update(last_seen=now - timedelta(seconds=4))
    assert readyz() == (503, NOBODY)
    settings.WORKER_HEARTBEAT_SECONDS = 5  # the default: 15 s
    assert readyz() == (200, {"status": "ok"})


@pytest.mark.django_db
def test_where_workers_run_on_their_own_readyz_says_so_but_stays_ready(settings: Any) -> None:
    # A web replica beside separate worker Deployments must not leave service with them.
    settings.WORKER_EMBEDDED = False
    settings.WORKER_HEARTBEAT_SECONDS = 1
    assert readyz() == (200, {"status": "ok", "worker": NOBODY["worker"]})


@pytest.fixture
def worker(tmp_path: Path, settings: Any) -> Iterator[WorkerProcess]:
    settings.WORKER_HEARTBEAT_SECONDS = 1
    with crash_worker("sqlite", tmp_path, settings) as process:
        process.env["DEFECTLAB_WORKER_HEARTBEAT_SECONDS"] = "1"
        yield process


@pytest.mark.django_db(transaction=True)
def test_readyz_follows_a_real_worker_killed_restarted_and_stopped(worker: WorkerProcess) -> None:
    def ready() -> bool:
        return readyz()[0] == 200

    assert readyz() == (503, NOBODY)
    worker.start()
    wait_until(ready, 90, "readyz to see the worker", worker)
    worker.kill()  # no goodbye: its heartbeat goes stale
    wait_for(lambda: readyz() == (503, NOBODY), "readyz to miss the killed worker")
    worker.start()
    wait_until(ready, 90, "readyz to see the new worker", worker)
    assert worker.process is not None
    pid = worker.process.pid
    assert WorkerHeartbeat.objects.filter(name__contains=f":{pid}:").exists()
    worker.process.terminate()  # a clean stop removes its row at once
    worker.process.wait(30)
    assert readyz() == (503, NOBODY)
    assert not WorkerHeartbeat.objects.filter(name__contains=f":{pid}:").exists()
    assert WorkerHeartbeat.objects.count() == 1  # the killed one's, until it is forgotten


@pytest.mark.django_db(transaction=True)
def test_a_worker_forgets_rows_of_workers_dead_for_a_day_and_removes_its_own(
    settings: Any,
) -> None:
    settings.WORKER_HEARTBEAT_SECONDS = 1
    now = timezone.now()
    for name, age in (("gone:1:aa", timedelta(days=2)), ("recent:2:bb", timedelta(hours=1))):
        WorkerHeartbeat.objects.create(name=name, started_at=now - age, last_seen=now - age)
    heartbeat = Heartbeat()
    heartbeat.start()
    mine = WorkerHeartbeat.objects.filter(name=heartbeat.name)
    wait_for(mine.exists, "the heartbeat")
    assert readyz() == (200, {"status": "ok"})
    heartbeat.stop()
    assert sorted(WorkerHeartbeat.objects.values_list("name", flat=True)) == ["recent:2:bb"]
