"""Dramatiq wiring: which broker (our SQLite one embedded, RabbitMQ at scale), the middleware,
and the one actor that runs a Job by id."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from django.conf import settings
from django.db import close_old_connections, connections
from dramatiq.broker import Broker
from dramatiq.errors import Retry
from dramatiq.middleware import Middleware, Retries

from defectlab.jobs.broker import SQLiteBroker

# Retry backoff for transient failures (a storage that timed out, a database restart).
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 300_000


class RetryLater(Retry):
    """Raised by the actor when a job failed for a reason worth retrying; Dramatiq's Retries
    middleware sends the message again with exponential backoff, or after ``delay``
    milliseconds when the job's kind sets its own pauses (``JobKind.retry_delay``)."""


class DjangoConnections(Middleware):
    """Worker threads are long-lived: give back database connections that are broken or past
    their age around each message, as Django does around each request."""

    def before_process_message(self, broker: Broker, message: Any) -> None:
        close_old_connections()

    def after_process_message(
        self, broker: Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        close_old_connections()

    after_skip_message = after_process_message

    def before_worker_thread_shutdown(self, broker: Broker, thread: Any) -> None:
        # Django's connections are per thread: a worker thread that ends closes its own.
        connections.close_all()


def build_broker(url: str) -> Broker:
    """``amqp://…`` is RabbitMQ; ``sqlite:///path`` or empty is the embedded broker."""
    middleware: list[Middleware] = [
        Retries(
            max_retries=settings.JOB_MAX_ATTEMPTS,
            min_backoff=MIN_BACKOFF_MS,
            max_backoff=MAX_BACKOFF_MS,
            retry_when=lambda retries, error: (
                isinstance(error, RetryLater) and retries < settings.JOB_MAX_ATTEMPTS
            ),
        ),
        DjangoConnections(),
    ]
    scheme = urlsplit(url).scheme
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Durable queues and persistent messages; a message is acked after the actor returned,
        # and the actor commits its own transaction before that.
        return RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True)
    path = urlsplit(url).path if scheme == "sqlite" else str(settings.DATA_DIR / "queue.sqlite3")
    return SQLiteBroker(path, lease_seconds=settings.JOB_LEASE_SECONDS, middleware=middleware)


_lock = threading.Lock()
_broker: Broker | None = None
_actor: dramatiq.Actor[..., Any] | None = None


def queue_name() -> str:
    """DEFECTLAB_JOB_QUEUE: lets several DefectLab installations share one RabbitMQ."""
    return str(settings.JOB_QUEUE)


def broker() -> Broker:
    """The process's broker, built from DEFECTLAB_BROKER_URL on first use."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = build_broker(settings.BROKER_URL)
            dramatiq.set_broker(_broker)
        return _broker


def run_job_actor() -> dramatiq.Actor[..., Any]:
    """The actor behind every job: its message is just the job's id."""
    global _actor
    current = broker()
    with _lock:
        if _actor is None or _actor.broker is not current or _actor.queue_name != queue_name():
            from defectlab.jobs.runner import run_job

            declare = dramatiq.actor(
                actor_name="run_job",
                queue_name=queue_name(),
                broker=current,
                max_retries=settings.JOB_MAX_ATTEMPTS,
            )
            _actor = declare(run_job)
        return _actor


def reset() -> None:
    """Forget the broker (tests that switch brokers, and forked processes)."""
    global _broker, _actor
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker = None
        _actor = None
