"""The worker `defectlab serve` runs beside the web server is supervised: a worker that dies is
logged and started again after a pause that doubles (capped) while it keeps dying quickly and
resets once it stayed up; shutdown stops it cleanly. The last test kills a real worker."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from defectlab.jobs.models import Job, JobState, WorkerHeartbeat
from defectlab.jobs.supervisor import WorkerSupervisor
from defectlab.tenancy.models import Role
from defectlab.transfer.urlimport import start_url_import
from tests.conftest import Tenant
from tests.jobs.brokers import BROKERS
from tests.jobs.processes import WorkerProcess, crash_worker, wait_for
from tests.jobs.test_crash import image_server  # noqa: F401 (a fixture)

LOGGER = "defectlab.jobs.supervisor"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def exits(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == LOGGER and r.__dict__.get("event") == "worker_exited"
    ]


@pytest.fixture
def supervised() -> Iterator[list[WorkerSupervisor]]:
    started: list[WorkerSupervisor] = []
    yield started
    for supervisor in started:
        supervisor.stop(timeout=5)


def test_a_worker_that_keeps_dying_is_restarted_with_a_doubling_capped_pause(
    caplog: pytest.LogCaptureFixture, supervised: list[WorkerSupervisor]
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    supervisor = WorkerSupervisor(
        python("raise SystemExit(3)"), min_backoff=0.01, max_backoff=0.04, stable_after=3600
    )
    supervised.append(supervisor)
    supervisor.start()
    wait_for(lambda: len(exits(caplog)) >= 5, "five exits")
    supervisor.stop()
    records = exits(caplog)[:5]
    assert [r.__dict__["restart_in_seconds"] for r in records] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert {r.__dict__["exit_code"] for r in records} == {3}
    assert all(r.levelno == logging.ERROR for r in records)
    restarted = [r for r in caplog.records if r.__dict__.get("event") == "worker_restarted"]
    assert len(restarted) >= 4 and restarted[0].__dict__["restarts"] == 1


def test_the_pause_goes_back_to_the_shortest_after_a_worker_stayed_up(
    caplog: pytest.LogCaptureFixture, supervised: list[WorkerSupervisor]
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    supervisor = WorkerSupervisor(
        python("import time; time.sleep(0.3)"), min_backoff=0.01, max_backoff=1, stable_after=0.2
    )
    supervised.append(supervisor)
    supervisor.start()
    wait_for(lambda: len(exits(caplog)) >= 3, "three exits")
    supervisor.stop()
    assert [r.__dict__["restart_in_seconds"] for r in exits(caplog)[:3]] == [0.01] * 3


def test_shutdown_stops_the_worker_without_restarting_it(
    caplog: pytest.LogCaptureFixture, supervised: list[WorkerSupervisor], tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    ready = tmp_path / "ready"
    stubborn = python(
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f" pathlib.Path({str(ready)!r}).touch(); time.sleep(120)"
    )
    supervisor = WorkerSupervisor(stubborn, min_backoff=0.01)
    supervised.append(supervisor)
    supervisor.start()
    wait_for(ready.exists, "the worker to start")
    supervisor.stop(timeout=0.5)  # it ignores SIGTERM: it is killed
    assert supervisor.process is not None and supervisor.process.returncode == -signal.SIGKILL
    assert supervisor.restarts == 0 and not exits(caplog)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", BROKERS)
def test_a_killed_worker_is_replaced_and_the_next_job_runs(
    kind: str,
    tenant: Tenant,
    image_server: str,  # noqa: F811
    tmp_path: Path,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    supervised: list[WorkerSupervisor],
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    owner = tenant.user(Role.OWNER)
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the image server is on loopback
    with crash_worker(kind, tmp_path, settings) as template:
        env = template.env | {
            "DEFECTLAB_WORKER_HEARTBEAT_SECONDS": "1",
            "DEFECTLAB_FETCH_ALLOWLIST": "127.0.0.1/32",
        }
        supervisor = WorkerSupervisor(WorkerProcess.command(), env=env, min_backoff=0.1)
        supervised.append(supervisor)
        supervisor.start()
        assert supervisor.process is not None
        first = supervisor.process.pid
        wait_for(lambda: heartbeat_of(first), "the first worker's heartbeat", 90)

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: supervisor.restarts == 1, "a new worker")
        second = supervisor.process.pid
        assert second != first
        wait_for(lambda: heartbeat_of(second), "the new worker's heartbeat", 90)
        job = start_url_import(tenant.project, [f"{image_server}/panel-1.png"], owner)
        wait_for(lambda: Job.objects.get(pk=job.pk).finished, "the job", 90)
        assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED

        supervisor.stop()
        assert supervisor.restarts == 1
        (record,) = exits(caplog)
        assert record.__dict__["exit_code"] == -signal.SIGKILL
        assert record.__dict__["pid"] == first


def heartbeat_of(pid: int) -> bool:
    return WorkerHeartbeat.objects.filter(name__contains=f":{pid}:").exists()


def test_a_worker_reaped_by_gunicorns_arbiter_still_counts_as_exited() -> None:
    """gunicorn's arbiter reaps every child of `defectlab serve`, the worker included: the
    supervisor must still see it gone (its exit code is then unknown)."""
    supervisor = WorkerSupervisor(python("raise SystemExit(3)"))
    supervisor._spawn()
    assert supervisor.process is not None
    os.waitpid(supervisor.process.pid, 0)  # what the arbiter's waitpid(-1) does on SIGCHLD
    assert supervisor._exited() == (True, None)
    supervisor._spawn()
    supervisor.process.wait()
    assert supervisor._exited() == (True, 3)


# ---------------------------------------------------------------------------- forked workers
# `defectlab serve` forks its worker (target=) so that it shares the Django loaded in the
# parent. These targets run in a forked copy of the test process and touch no database.


def appends_then_exits(path: Path, code: int) -> Any:
    def target() -> int:
        name = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
        with path.open("a") as file:
            file.write(f"{os.getpid()} {name}\n")
        return code

    return target


def test_a_forked_worker_that_recycles_itself_is_started_again_at_once(
    caplog: pytest.LogCaptureFixture, supervised: list[WorkerSupervisor], tmp_path: Path
) -> None:
    from defectlab.jobs.supervisor import RECYCLE

    caplog.set_level(logging.INFO, LOGGER)
    runs = tmp_path / "runs"
    supervisor = WorkerSupervisor(
        target=appends_then_exits(runs, RECYCLE), min_backoff=30, poll=0.01
    )
    supervised.append(supervisor)
    supervisor.start()
    # Three runs although a failure would wait 30 s: a recycle is no failure.
    wait_for(lambda: runs.exists() and len(runs.read_text().splitlines()) >= 3, "three runs")
    supervisor.stop()
    lines = runs.read_text().splitlines()
    assert len({line.split()[0] for line in lines}) == len(lines)  # a new process each time
    assert {line.split()[1] for line in lines} == {"defectlab-jobs"}  # named for ps
    assert supervisor.recycled >= 2 and supervisor.restarts == 0
    assert not exits(caplog)
    recycled = [r for r in caplog.records if r.__dict__.get("event") == "worker_recycled"]
    assert len(recycled) >= 2 and all(r.levelno == logging.INFO for r in recycled)


def test_a_forked_worker_that_fails_is_restarted_after_a_pause(
    caplog: pytest.LogCaptureFixture, supervised: list[WorkerSupervisor], tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    supervisor = WorkerSupervisor(
        target=appends_then_exits(tmp_path / "runs", 3), min_backoff=0.01, max_backoff=0.02
    )
    supervised.append(supervisor)
    supervisor.start()
    wait_for(lambda: len(exits(caplog)) >= 2, "two exits")
    supervisor.stop()
    assert [r.__dict__["exit_code"] for r in exits(caplog)[:2]] == [3, 3]
    assert supervisor.recycled == 0


def test_a_recycle_is_known_even_when_gunicorn_reaped_the_worker_first(
    caplog: pytest.LogCaptureFixture, supervised: list[WorkerSupervisor], tmp_path: Path
) -> None:
    """Under gunicorn the master reaps every child, so the exit code may be gone: the forked
    worker also says it recycled through a pipe. Here the test reaps it, as gunicorn would."""
    from defectlab.jobs.supervisor import RECYCLE

    caplog.set_level(logging.INFO, LOGGER)
    runs = tmp_path / "runs"
    supervisor = WorkerSupervisor(
        target=appends_then_exits(runs, RECYCLE), min_backoff=30, poll=1.0
    )
    supervised.append(supervisor)
    supervisor.start()
    assert supervisor.process is not None
    first = supervisor.process.pid
    wait_for(runs.exists, "the first run")
    os.waitpid(first, 0)  # taken before the supervisor looks (it looks once a second)
    wait_for(lambda: supervisor.recycled >= 1, "the recycle to be seen")
    supervisor.stop()
    assert not exits(caplog)
