"""The job worker's probe server (`defectlab.operations.probes`): `/healthz` fails when the job
worker's threads died (so its orchestrator restarts it) but not when only its heartbeat is late
(the database away: a restart would not help); an idle connection is dropped and a flood of
them neither takes a thread each nor stops the probes from answering."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from defectlab.jobs import queue
from defectlab.jobs.worker import _running, run_worker
from defectlab.operations.probes import worker_probes
from tests.jobs.processes import wait_for
from tests.operations.scrape import free_port


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.django_db(transaction=True)
def test_healthz_fails_when_a_thread_of_the_worker_died_and_not_for_a_late_heartbeat(
    settings: Any, tmp_path: Any
) -> None:
    settings.BROKER_URL = f"sqlite:///{tmp_path}/queue.sqlite3"
    settings.WORKER_HEARTBEAT_SECONDS = 1
    queue.reset()
    port = free_port()
    stop = threading.Event()
    loop = threading.Thread(target=run_worker, args=(2,), kwargs={"stop": stop})
    with worker_probes("127.0.0.1", port):
        base = f"http://127.0.0.1:{port}"
        loop.start()
        try:
            wait_for(lambda: get(f"{base}/readyz")[0] == 200, "the worker's /readyz")
            assert get(f"{base}/healthz") == (200, {"status": "ok"})
            heartbeat = _running["heartbeat"]
            # The heartbeat not written lately (what the database being away looks like): not
            # ready, but alive: restarting every worker for a database blip helps nobody.
            last_beat = heartbeat.last_beat
            heartbeat.last_beat = last_beat - 3600
            assert get(f"{base}/readyz")[0] == 503
            assert get(f"{base}/healthz") == (200, {"status": "ok"})
            heartbeat.last_beat = last_beat
            # One of the job worker's threads ends: the process will never run jobs on it again.
            dead = _running["worker"].workers[0]
            dead.stop()
            dead.join(30)
            status, body = get(f"{base}/healthz")
            assert (status, body["worker"]) == (503, "a thread of the job worker stopped")
            assert get(f"{base}/readyz")[0] == 503
        finally:
            stop.set()
            loop.join(30)
            queue.reset()


def handler_threads() -> int:
    return sum("process_request_thread" in thread.name for thread in threading.enumerate())


@pytest.mark.django_db(transaction=True)
def test_idle_connections_are_dropped_and_bounded_and_the_probes_still_answer() -> None:
    port = free_port()
    before = handler_threads()
    with worker_probes("127.0.0.1", port) as server:
        assert server is not None
        idle = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(40)]
        try:
            # Answered once the idle connections ahead of it were dropped (after the
            # handler's timeout), all 40 having been accepted in order before it.
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            assert handler_threads() - before <= 16
            # An idle connection is closed by the server: its read ends, with no data.
            assert idle[0].recv(1) == b""
        finally:
            for connection in idle:
                connection.close()
