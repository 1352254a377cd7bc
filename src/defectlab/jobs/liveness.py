"""Which job workers are alive: each `defectlab worker` writes a heartbeat row every
DEFECTLAB_WORKER_HEARTBEAT_SECONDS, and `/readyz` of every process answers 503 when none has
been seen for three of those intervals (jobs would wait forever)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from defectlab.jobs.models import WorkerHeartbeat

log = logging.getLogger(__name__)

# Rows of workers that died without a goodbye are removed after this long.
FORGET_AFTER = timedelta(days=1)


def seen_window() -> int:
    """Seconds without a heartbeat after which a worker counts as gone."""
    return 3 * int(settings.WORKER_HEARTBEAT_SECONDS)


def worker_problem(host: str | None = None) -> str | None:
    """Why jobs would not run (no worker seen lately), or None. With ``host``, only the workers
    of that host count (a container's health check asks about its own worker)."""
    window = seen_window()
    since = timezone.now() - timedelta(seconds=window)
    seen = WorkerHeartbeat.objects.filter(last_seen__gte=since)
    if host is not None:
        seen = seen.filter(name__startswith=f"{host}:")  # Heartbeat.name is host:pid:nonce
    if seen.exists():
        return None
    where = f" on {host}" if host is not None else ""
    return f"no job worker seen{where} in the last {window} s"


class Heartbeat:
    """The worker process's heartbeat: a thread that refreshes this process's row until stopped,
    then deletes it (a clean stop is seen at once; a killed worker after `seen_window()`)."""

    def __init__(self) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.interval = float(settings.WORKER_HEARTBEAT_SECONDS)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self.last_beat: float | None = None  # time.monotonic() of the last row written

    def age(self) -> float:
        """Seconds since this process's row was last written (infinite before the first)."""
        return float("inf") if self.last_beat is None else time.monotonic() - self.last_beat

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(self.interval + 10)

    def beat(self) -> None:
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            name=self.name,
            defaults={"last_seen": now},
            create_defaults={"started_at": now, "last_seen": now},
        )
        self.last_beat = time.monotonic()

    def _run(self) -> None:
        try:
            self._guarded(
                lambda: WorkerHeartbeat.objects.filter(
                    last_seen__lt=timezone.now() - FORGET_AFTER
                ).delete()
            )
            while True:
                self._guarded(self.beat)
                if self.stopped.wait(self.interval):
                    break
            self._guarded(lambda: WorkerHeartbeat.objects.filter(name=self.name).delete())
        finally:
            connections.close_all()  # this thread's own connections

    def _guarded(self, write: Callable[[], object]) -> None:
        close_old_connections()
        try:
            write()
        except DatabaseError as error:
            # The database is away: jobs cannot run either; say so and keep trying.
            log.warning("worker heartbeat not written: %s", error, extra={"worker": self.name})
