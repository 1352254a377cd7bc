"""The worker process: consume the job queue until told to stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from dramatiq import Worker
from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

from defectlab.jobs.liveness import Heartbeat, seen_window
from defectlab.jobs.queue import broker, queue_name, run_job_actor

log = logging.getLogger(__name__)

STOP_TIMEOUT_MS = 10_000  # a clean stop: jobs in progress get this long, then are handed out again
RECYCLE_TIMEOUT_MS = 600_000  # a recycling stop lets the other jobs in progress finish


def memory_mb() -> float:
    """This process's proportional set size (PSS) in MB: its own pages, and its share of pages
    it shares (a worker forked by `defectlab serve` shares Django's with the web server).
    Resident size where /proc/self/smaps_rollup is missing; 0 where neither is known."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):
        return 0.0


def resident_mb() -> float:
    """This process's resident set size in MB (shared pages counted whole; cheap to read)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("inf")  # unknown: let memory_mb() decide
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class RecycleAbove(Middleware):
    """After each job: above ``limit_mb`` of memory, stop taking jobs and have the worker exit,
    so that what a big job left behind (Python keeps freed memory for reuse) goes back to the
    system; the supervisor (or the service manager) starts a fresh worker."""

    def __init__(self, limit_mb: int, stop: threading.Event, recycle: threading.Event) -> None:
        self.limit_mb = limit_mb
        self.stop = stop
        self.recycle = recycle

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if not self.limit_mb or self.recycle.is_set():
            return
        used = memory_mb()
        if used > self.limit_mb:
            log.info(
                "worker: %.0f MB after a job, above %s MB: stopping to hand it back",
                used, self.limit_mb,
                extra={"event": "worker_recycling", "memory_mb": round(used), "limit_mb": self.limit_mb},
            )  # fmt: skip
            self.recycle.set()
            self.stop.set()

    after_skip_message = after_process_message


# This process's running worker and heartbeat, for its probes (`loop_problem`).
_running: dict[str, Any] = {}


def threads_problem() -> str | None:
    """Why this process's job worker can never take a job again (its `/healthz`: restart it),
    or None: one of its consumer or worker threads, or its heartbeat thread, died. Not the
    database being away (the threads wait for it), nor a worker not yet started."""
    worker, heartbeat = _running.get("worker"), _running.get("heartbeat")
    if worker is None or heartbeat is None:
        return None
    threads = [*worker.workers, *worker.consumers.values(), heartbeat.thread]
    if not all(thread.is_alive() for thread in threads):
        return "a thread of the job worker stopped"
    return None


def loop_problem() -> str | None:
    """Why this process's job worker is not taking jobs (its `/readyz`), or None: not started
    (or stopping), one of its threads died, or its heartbeat has not been written lately (the
    database is away, or the process is stuck)."""
    worker, heartbeat = _running.get("worker"), _running.get("heartbeat")
    if worker is None or heartbeat is None:
        return "the job worker is not running"
    problem = threads_problem()
    if problem is not None:
        return problem
    if heartbeat.age() > seen_window():
        return f"no heartbeat written in the last {seen_window()} s"
    return None


def run_worker(
    threads: int, *, stop: threading.Event | None = None, max_memory_mb: int = 0
) -> bool:
    """Run jobs with ``threads`` worker threads until SIGTERM / SIGINT (or ``stop`` is set).
    On a clean stop, messages taken but not started go back to the queue; a job in progress is
    given a moment to finish, and otherwise is handed out again by the broker (leases / RabbitMQ
    redelivery), which is safe because handlers are idempotent.

    With ``max_memory_mb``, the worker stops by itself after a job that left it above that much
    memory (the jobs in progress finish first) and answers True: it should be started again."""
    stop = stop or threading.Event()
    recycle = threading.Event()
    run_job_actor()  # declares the queue on this process's broker
    recycler = RecycleAbove(max_memory_mb, stop, recycle)
    if max_memory_mb:
        broker().add_middleware(recycler)
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
    _running.update(worker=worker, heartbeat=heartbeat)
    log.info("worker: running %s threads on %s", threads, type(broker()).__name__)
    try:
        stop.wait()
    finally:
        _running.clear()
        worker.stop(timeout=RECYCLE_TIMEOUT_MS if recycle.is_set() else STOP_TIMEOUT_MS)
        heartbeat.stop()
        if recycler in broker().middleware:
            broker().middleware.remove(recycler)
        broker().close()
    return recycle.is_set()
