"""The contract every job broker keeps, run against both: our SQLite broker and RabbitMQ.

What the product relies on: a message sent is processed (once, when all goes well); a delayed
message waits; a failure is retried with backoff and, after the last retry, kept as a dead letter;
a message a consumer took but never acknowledged (its worker died) is delivered again; and a slow
message is not handed to a second worker while the first is still on it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker

from tests.jobs.brokers import BROKERS, dead_letter_count, make_broker, unique_queue

pytestmark = pytest.mark.parametrize("kind", BROKERS)


class Recorder:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def add(self, key: str) -> int:
        with self.changed:
            self.calls[key] += 1
            self.changed.notify_all()
            return self.calls[key]

    def wait_for(self, predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.calls), timeout), dict(self.calls)


def run_worker(broker: dramatiq.Broker, queue: str, threads: int = 2) -> Worker:
    worker = Worker(broker, queues={queue}, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


def test_every_message_is_processed_once(kind: str, tmp_path: Path) -> None:
    with make_broker(kind, tmp_path) as broker:
        queue, seen = unique_queue(), Recorder()
        actor = dramatiq.actor(
            lambda n: seen.add(str(n)), actor_name=f"count_{queue}", queue_name=queue, broker=broker
        )
        for n in range(25):
            actor.send(n)
        worker = run_worker(broker, queue)
        try:
            seen.wait_for(lambda calls: len(calls) == 25)
            broker.join(queue, timeout=30_000)
        finally:
            worker.stop()
        assert set(seen.calls.values()) == {1}


def test_a_delayed_message_waits(kind: str, tmp_path: Path) -> None:
    with make_broker(kind, tmp_path) as broker:
        queue, seen = unique_queue(), Recorder()
        actor = dramatiq.actor(
            lambda: seen.add("late"), actor_name=f"late_{queue}", queue_name=queue, broker=broker
        )
        worker = run_worker(broker, queue)
        try:
            sent = time.monotonic()
            actor.send_with_options(delay=1500)
            seen.wait_for(lambda calls: calls["late"] == 1)
            # Not an assertion on speed: a delay is a promise *not* to run before the time.
            assert time.monotonic() - sent >= 1.4
        finally:
            worker.stop()


def test_failures_are_retried_then_dead_lettered(kind: str, tmp_path: Path) -> None:
    with make_broker(kind, tmp_path) as broker:
        queue, seen = unique_queue(), Recorder()

        def flaky(key: str, failures: int) -> None:
            if seen.add(key) <= failures:
                raise RuntimeError(f"failure {seen.calls[key]}")

        actor = dramatiq.actor(flaky, actor_name=f"flaky_{queue}", queue_name=queue, broker=broker)
        actor.send("recovers", 2)  # fails twice, then works
        actor.send("never", 99)  # 1 try + 3 retries, then a dead letter
        worker = run_worker(broker, queue)
        try:
            seen.wait_for(lambda calls: calls["recovers"] == 3 and calls["never"] == 4)
            deadline = time.monotonic() + 30
            while dead_letter_count(broker, queue) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop()
        assert dead_letter_count(broker, queue) == 1
        time.sleep(0.3)
        assert seen.calls == {"recovers": 3, "never": 4}


def test_a_message_whose_consumer_died_unacknowledged_is_delivered_again(
    kind: str, tmp_path: Path
) -> None:
    with make_broker(kind, tmp_path) as broker:
        queue = unique_queue()
        actor = dramatiq.actor(
            lambda: None, actor_name=f"orphan_{queue}", queue_name=queue, broker=broker
        )
        sent = actor.send()
        first = broker.consume(queue, prefetch=1, timeout=5000)
        taken = next(first)
        assert taken is not None and taken.message_id == sent.message_id
        # The worker "dies": no ack, no requeue; its consumer goes away (RabbitMQ sees the
        # channel close; the SQLite lease stops being renewed and runs out).
        first.close()
        if kind == "rabbitmq":
            del broker.connection  # what a killed process does to its TCP connection
        second = broker.consume(queue, prefetch=1, timeout=10_000)
        again = next(second)
        assert again is not None and again.message_id == sent.message_id
        second.ack(again)
        second.close()


def test_a_slow_message_is_not_handed_to_a_second_worker(kind: str, tmp_path: Path) -> None:
    # The SQLite lease is 1 s here; the job takes 3.5: the consumer must keep renewing it.
    with make_broker(kind, tmp_path, lease_seconds=1.0) as broker:
        queue, seen = unique_queue(), Recorder()

        def slow() -> None:
            seen.add("start")
            time.sleep(3.5)
            seen.add("end")

        actor = dramatiq.actor(slow, actor_name=f"slow_{queue}", queue_name=queue, broker=broker)
        actor.send()
        workers = [run_worker(broker, queue, threads=1), run_worker(broker, queue, threads=1)]
        try:
            seen.wait_for(lambda calls: calls["end"] == 1)
            broker.join(queue, timeout=30_000)
        finally:
            for worker in workers:
                worker.stop()
        assert seen.calls == {"start": 1, "end": 1}
