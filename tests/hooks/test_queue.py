"""A webhook delivery through a real queue and worker: the embedded SQLite broker and RabbitMQ.
The receiver fails twice; the broker brings the job back after the pauses the job asked for,
and the third attempt delivers it."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from dramatiq.common import dq_name, xq_name

from defectlab.hooks import services
from defectlab.hooks.models import Delivery, DeliveryStatus
from defectlab.jobs import queue
from defectlab.jobs.worker import run_worker
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.hooks.conftest import Receiver
from tests.jobs.brokers import RABBITMQ_URL, require_rabbitmq

BOUND = 60  # seconds to wait at most for the worker (a bound, not a measurement)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["sqlite", "rabbitmq"])
def test_a_worker_delivers_on_the_third_attempt_after_two_failures(
    tenant: Tenant, receiver: Receiver, settings: Any, tmp_path: Any, kind: str
) -> None:
    if kind == "rabbitmq":
        require_rabbitmq()
        settings.BROKER_URL = RABBITMQ_URL
    else:
        settings.BROKER_URL = f"sqlite:///{tmp_path}/queue.sqlite3"
    settings.JOB_QUEUE = f"hooks-{uuid.uuid4().hex[:12]}"
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    settings.WEBHOOK_RETRY_SECONDS = 0.05
    receiver.answers = [500, 502]
    queue.reset()
    hook, secret = services.create_webhook(
        tenant.organization, tenant.user(Role.ADMIN), url=receiver.url(), events=["task.approved"]
    )
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(1,), kwargs={"stop": stop})
    worker.start()
    try:
        delivery = services.ping(hook, tenant.user(Role.ADMIN))  # autocommit: sent at once
        until = time.monotonic() + BOUND
        while time.monotonic() < until:
            delivery.refresh_from_db()
            if delivery.status != DeliveryStatus.PENDING:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(30)
        if kind == "rabbitmq":
            _remove_queues()
        queue.reset()
    assert (delivery.status, delivery.attempts, delivery.status_code) == (
        DeliveryStatus.SUCCEEDED,
        3,
        200,
    )
    assert [seen.headers["X-DefectLab-Delivery"] for seen in receiver.received] == [
        str(delivery.uuid)
    ] * 3
    assert all(seen.valid_for(secret) for seen in receiver.received)
    assert Delivery.objects.count() == 1


def _remove_queues() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=RABBITMQ_URL)
    try:
        for name in (queue.queue_name(), dq_name(queue.queue_name()), xq_name(queue.queue_name())):
            broker.channel.queue_delete(name)
    finally:
        broker.close()
