"""The worker process: consume the job queue until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from dramatiq import Worker

from defectlab.jobs.liveness import Heartbeat
from defectlab.jobs.queue import broker, queue_name, run_job_actor

log = logging.getLogger(__name__)


def run_worker(threads: int, *, stop: threading.Event | None = None) -> None:
    """Run jobs with ``threads`` worker threads until SIGTERM / SIGINT (or ``stop`` is set).
    On a clean stop, messages taken but not started go back to the queue; a job in progress is
    given a moment to finish, and otherwise is handed out again by the broker (leases / RabbitMQ
    redelivery), which is safe because handlers are idempotent."""
    stop = stop or threading.Event()
    run_job_actor()  # declares the queue on this process's broker
    worker = Worker(broker(), queues={queue_name()}, worker_threads=threads, worker_timeout=1000)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("worker: signal %s, stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    worker.start()
    heartbeat = Heartbeat()
    heartbeat.start()
    log.info("worker: running %s threads on %s", threads, type(broker()).__name__)
    try:
        stop.wait()
    finally:
        worker.stop(timeout=10_000)
        heartbeat.stop()
        broker().close()
