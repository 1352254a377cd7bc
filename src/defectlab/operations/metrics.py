"""The web's and the job workers' Prometheus metrics (`/metrics`; the detection service has its
own, `defectlab.serving.metrics`).

Two sorts:

- Events counted by the process they happen in: requests and their latency by route, job
  attempts by kind and outcome and their duration, jobs running now, annotations saved, tasks
  submitted, reviews by verdict. Under `defectlab serve` every gunicorn worker and the embedded
  job worker write theirs to files in one directory (prometheus_client's multiprocess mode, set
  up by `defectlab.operations.multiprocess` before anything is imported), and whichever process
  answers a scrape adds them all up.
- Gauges read from the database when scraped (`Snapshot`): jobs by kind and state, queued jobs
  by kind, the broker's waiting messages, tasks by status (from the projects' stored counters,
  never a count over tasks), live job workers. Kept for DEFECTLAB_METRICS_CACHE_SECONDS, so
  scrapes from several Prometheus servers cost one reading.

Labels carry route names, kinds, states and outcomes only: never an organization, a user or a
path as sent (privacy, and a bounded number of series).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

# Who may read /metrics, and how the others are answered: the same for every role.
from defectlab.serving.metrics import CHALLENGE as CHALLENGE
from defectlab.serving.metrics import allowed as allowed
from defectlab.serving.metrics import refusal as refusal

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "defectlab_http_requests",
    "Requests answered, by route (the URL pattern's name), method and status class.",
    ("route", "method", "status"),
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "defectlab_http_request_seconds",
    "Time from a request's arrival at the app to its response (a streamed body not included).",
    ("route", "method"),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "defectlab_job_runs",
    "Attempts at jobs that ended in this process, by kind and outcome "
    "(succeeded, failed, cancelled, retried).",
    ("kind", "outcome"),
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "defectlab_job_seconds",
    "Time of one attempt at a job, by kind.",
    ("kind",),
    buckets=JOB_BUCKETS,
    registry=REGISTRY,
)
JOBS_RUNNING = Gauge(
    "defectlab_jobs_running",
    "Jobs being run now by this process's job workers, by kind.",
    ("kind",),
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
ANNOTATIONS_SAVED = Counter(
    "defectlab_annotations_saved",
    "Annotation versions saved (drafts and submissions).",
    registry=REGISTRY,
)
TASKS_SUBMITTED = Counter(
    "defectlab_tasks_submitted", "Tasks submitted for review.", registry=REGISTRY
)
REVIEWS = Counter(
    "defectlab_reviews", "Review verdicts given, by verdict.", ("verdict",), registry=REGISTRY
)


def multiprocess() -> bool:
    """Whether this process's metrics are written to PROMETHEUS_MULTIPROC_DIR (decided when
    prometheus_client was imported: `defectlab serve` sets it first)."""
    return values.ValueClass is not values.MutexValue


def render() -> bytes:
    """The text a scrape gets: every process's events (all of `serve`'s processes in its
    multiprocess mode, else this one's and its own process figures) and the database's gauges."""
    if not multiprocess():
        return generate_latest(REGISTRY)
    from prometheus_client.multiprocess import MultiProcessCollector

    from defectlab.operations.multiprocess import forget_dead_processes, locked

    forget_dead_processes()
    registry = CollectorRegistry()
    collector = MultiProcessCollector(registry)
    registry.register(SNAPSHOT)
    with locked(collector._path, exclusive=False):  # no fold moves values while we add them
        return generate_latest(registry)


def method_of(method: str | None) -> str:
    """The method as a label: one of the standard ones, else "other" (bounded)."""
    return method if method in METHODS else "other"


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method_of(method)
    HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


class Snapshot:
    """Gauges read from the database when scraped, kept DEFECTLAB_METRICS_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._read_at: float | None = None

    def forget(self) -> None:
        with self._lock:
            self._read_at = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= settings.METRICS_CACHE_SECONDS:
                self._families = list(self._read())
                self._read_at = now
            families = self._families
        yield from families

    def _read(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "defectlab_database_up", "Whether the database answered the last metrics reading."
        )
        try:
            families = [*_job_families(), _broker_family(), _task_family(), _worker_family()]
        except DatabaseError as error:
            log.warning("metrics: the database did not answer: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from (family for family in families if family is not None)


def _job_families() -> list[Metric]:
    from defectlab.jobs import kinds
    from defectlab.jobs.models import Job, JobState

    jobs = GaugeMetricFamily(
        "defectlab_jobs", "Jobs recorded, by kind and state.", labels=["kind", "state"]
    )
    queued = {name: 0 for name in kinds.KINDS}
    rows = Job.objects.order_by().values_list("kind", "state").annotate(count=Count("id"))
    for kind, state, count in sorted(rows):
        jobs.add_metric([kind, state], count)
        if state == JobState.QUEUED:
            queued[kind] = count
    depth = GaugeMetricFamily(
        "defectlab_job_queue_depth",
        "Jobs waiting for a worker (queued, including those waiting to be tried again), by kind.",
        labels=["kind"],
    )
    for kind, count in sorted(queued.items()):
        depth.add_metric([kind], count)
    return [jobs, depth]


def _broker_family() -> Metric | None:
    """Messages waiting in the broker's job queue (RabbitMQ: ready + delayed; the embedded
    SQLite broker: not yet finished), or nothing where the broker cannot say."""
    from defectlab.jobs.queue import broker, queue_name

    try:
        current: Any = broker()
        if hasattr(current, "get_queue_message_counts"):
            ready, delayed, _dead = current.get_queue_message_counts(queue_name())
            waiting = ready + delayed
        elif hasattr(current, "pending"):
            waiting = current.pending(queue_name())
        else:
            return None
    except Exception as error:  # any broker error means the same here: no figure this time
        log.warning("metrics: the broker did not answer: %s", error)
        return None
    return GaugeMetricFamily(
        "defectlab_broker_messages", "Messages waiting in the broker's job queue.", value=waiting
    )


def _task_family() -> Metric:
    from defectlab.labeling.models import Project, TaskStatus

    fields = {status: f"count_{status}" for status in TaskStatus.values}
    sums = Project.objects.order_by().aggregate(
        **{status: Sum(field) for status, field in fields.items()}
    )
    tasks = GaugeMetricFamily(
        "defectlab_tasks", "Tasks of all projects, by status.", labels=["status"]
    )
    for status in TaskStatus.values:
        tasks.add_metric([status], sums[status] or 0)
    return tasks


def _worker_family() -> Metric:
    from datetime import timedelta

    from defectlab.jobs.liveness import seen_window
    from defectlab.jobs.models import WorkerHeartbeat

    since = timezone.now() - timedelta(seconds=seen_window())
    return GaugeMetricFamily(
        "defectlab_job_workers",
        "Job worker processes whose heartbeat is fresh.",
        value=WorkerHeartbeat.objects.filter(last_seen__gte=since).count(),
    )


SNAPSHOT = Snapshot()
REGISTRY.register(SNAPSHOT)
ProcessCollector(registry=REGISTRY)  # this process's memory, CPU, open files (single process)


# ---------------------------------------------------------------------------- the events


def _job_started(sender: Any, kind: str, **_: Any) -> None:
    JOBS_RUNNING.labels(kind).inc()


def _job_attempted(sender: Any, kind: str, outcome: str, seconds: float | None, **_: Any) -> None:
    JOB_RUNS.labels(kind, outcome).inc()
    if seconds is not None:  # a handler ran (and had been counted as running)
        JOBS_RUNNING.labels(kind).dec()
        JOB_SECONDS.labels(kind).observe(seconds)


def _annotation_saved(sender: Any, submit: bool, **_: Any) -> None:
    ANNOTATIONS_SAVED.inc()
    if submit:
        TASKS_SUBMITTED.inc()


def _task_event(sender: Any, event: str, **_: Any) -> None:
    verdict = {"task.approved": "approve", "task.rejected": "reject"}.get(event)
    if verdict is not None:  # counted once the verdict has committed
        transaction.on_commit(REVIEWS.labels(verdict).inc)


def connect() -> None:
    """Count the apps' events in this process (from `OperationsConfig.ready`, in every process)."""
    from defectlab.jobs.signals import job_attempted, job_started
    from defectlab.labeling.signals import annotation_saved, task_event

    job_started.connect(_job_started, dispatch_uid="operations.metrics.job_started")
    job_attempted.connect(_job_attempted, dispatch_uid="operations.metrics.job_attempted")
    annotation_saved.connect(_annotation_saved, dispatch_uid="operations.metrics.annotation_saved")
    task_event.connect(_task_event, dispatch_uid="operations.metrics.task_event")
