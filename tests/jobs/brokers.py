"""Both brokers, built the same way for the tests: our SQLite one, and RabbitMQ on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dramatiq.broker import Broker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import Retries

from defectlab.jobs.broker import SQLiteBroker

RABBITMQ_URL = os.environ.get(
    "DEFECTLAB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)
BROKERS = ["sqlite", "rabbitmq"]


def rabbitmq_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def require_rabbitmq() -> None:
    """Skip without RabbitMQ, except in CI, where it must be there."""
    if rabbitmq_answers():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("RabbitMQ does not answer on 127.0.0.1:5672, and CI must test against it")
    pytest.skip("RabbitMQ does not answer on 127.0.0.1:5672 (start it: rabbitmq-server -detached)")


def fast_retries(max_retries: int = 3) -> Retries:
    return Retries(max_retries=max_retries, min_backoff=50, max_backoff=200)


@contextmanager
def make_broker(kind: str, tmp_path: Path, *, lease_seconds: float = 1.0) -> Iterator[Broker]:
    if kind == "sqlite":
        broker: Broker = SQLiteBroker(
            tmp_path / "queue.sqlite3",
            lease_seconds=lease_seconds,
            poll_seconds=0.02,
            middleware=[fast_retries()],
        )
        try:
            yield broker
        finally:
            broker.close()
        return
    require_rabbitmq()
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=RABBITMQ_URL, middleware=[fast_retries()], confirm_delivery=True)
    try:
        yield broker
    finally:
        # Each test used its own queue names: remove them so RabbitMQ keeps nothing behind.
        channel = broker.channel
        for queue in list(broker.queues):
            for name in (queue, dq_name(queue), xq_name(queue)):
                channel.queue_delete(name)
        broker.close()


def unique_queue() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def dead_letter_count(broker: Broker, queue: str) -> int:
    if isinstance(broker, SQLiteBroker):
        return len(broker.dead_letters(queue))
    return int(broker.get_queue_message_counts(queue)[2])  # type: ignore[attr-defined]
