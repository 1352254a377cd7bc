"""Real worker processes for the crash tests: `defectlab worker` started with the test's
database, data directory and broker, and killed the hard way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection


def database_url() -> str:
    """The test database as a URL another process can open."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    host = config.get("HOST") or "127.0.0.1"
    user = config.get("USER") or ""
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    return f"postgresql://{credentials}{host}:{config.get('PORT') or 5432}/{config['NAME']}"


class WorkerProcess:
    def __init__(self, data_dir: Path, broker_url: str, log: Path) -> None:
        self.env = {
            **os.environ,
            "DEFECTLAB_DATABASE_URL": database_url(),
            "DEFECTLAB_DATA_DIR": str(data_dir),
            "DEFECTLAB_BROKER_URL": broker_url,
            "DEFECTLAB_JOB_LEASE_SECONDS": "2",
            "DEFECTLAB_LOG_FORMAT": "text",
            "DEFECTLAB_WORKER_THREADS": "1",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def command() -> list[str]:
        return [sys.executable, "-m", "defectlab.cli", "worker"]

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no requeue, no goodbye to the broker."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(f"the worker exited while waiting for {what}:\n{worker.output()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.output()[-4000:]}")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """``wait_until`` for when no worker is meant to be running."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextmanager
def crash_worker(kind: str, tmp_path: Path, settings: Any) -> Iterator[WorkerProcess]:
    """A worker process (not yet started) on ``kind``'s broker, the test's database and a data
    directory under ``tmp_path``, with its own TMPDIR. The queue name is this test's own, so a
    test run never takes (or flushes) the messages of another run sharing the same RabbitMQ."""
    from defectlab.jobs import queue
    from tests.jobs.brokers import RABBITMQ_URL, require_rabbitmq

    if kind == "rabbitmq":
        require_rabbitmq()
        broker_url = RABBITMQ_URL
    else:
        broker_url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    data_dir = tmp_path / "data"
    settings.STORAGE_DIR = data_dir / "storage"  # where the worker process reads and writes
    settings.BROKER_URL = broker_url
    settings.JOB_QUEUE = f"test-{uuid.uuid4().hex[:12]}"
    queue.reset()
    queue.run_job_actor()
    process = WorkerProcess(data_dir, broker_url, tmp_path / "worker.log")
    process.env["DEFECTLAB_JOB_QUEUE"] = settings.JOB_QUEUE
    (tmp_path / "tmp").mkdir(exist_ok=True)
    process.env["TMPDIR"] = str(tmp_path / "tmp")
    try:
        yield process
    finally:
        process.stop()
        if kind == "rabbitmq":
            delete_rabbitmq_queues(queue.broker(), settings.JOB_QUEUE)
        queue.reset()


def delete_rabbitmq_queues(broker: Any, name: str) -> None:
    from dramatiq.common import dq_name, xq_name

    channel = broker.channel
    for queue_name in (name, dq_name(name), xq_name(name)):
        channel.queue_delete(queue_name)
