"""The embedded job queue: a Dramatiq broker that keeps its messages in a local SQLite file.

Why our own: the embedded default must not lose work when a worker dies. A message is never
removed when it is handed out; it is *leased* to one consumer until a deadline, and the consumer
renews the lease while the message is being worked on. An ack deletes the row; a nack keeps it as
a dead letter. When a worker is killed (SIGKILL, power cut) its leases simply run out and the
messages go to the next consumer that asks. Handlers are idempotent, so a second delivery of work
that was half done is safe (DESIGN: jobs).

One table holds every queue:

    messages(id, queue, message_id, body, eta, lease_until, lease_owner, deliveries, dead)

`eta` is when the message may be delivered (milliseconds; delays and retry backoff use it, so no
separate delay queues are needed), `lease_until` is null or when the current lease runs out.
Several processes may share the file (the web app enqueues, workers consume): WAL mode, a busy
timeout and short `BEGIN IMMEDIATE` transactions keep that safe.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import current_millis
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    eta INTEGER NOT NULL,
    lease_until INTEGER,
    lease_owner TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, dead, eta, id);
"""


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


class SQLiteBroker(Broker):
    """Dramatiq broker on one SQLite file, with leases that make delivery at-least-once.

    lease_seconds: how long a consumer may hold a message without renewing; a killed worker's
    messages are delivered again at most this long after it died. poll_seconds: how often an idle
    consumer looks for new messages.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.2,
        middleware: list[Middleware] | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease_ms = int(lease_seconds * 1000)
        self.poll_seconds = poll_seconds
        self._local = threading.local()
        with _connect(self.path) as connection:
            connection.executescript(SCHEMA)

    @property
    def connection(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 connections are not for sharing)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = _connect(self.path)
        return connection

    # ---- Broker interface -------------------------------------------------------------------

    def declare_queue(self, queue_name: str) -> None:
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self.queues[queue_name] = None
        self.emit_after("declare_queue", queue_name)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        if message.queue_name not in self.queues:
            raise QueueNotFound(message.queue_name)
        self.emit_before("enqueue", message, delay)
        eta = current_millis() + (delay or 0)
        self.connection.execute(
            "INSERT INTO messages (queue, message_id, body, eta) VALUES (?, ?, ?, ?)",
            (message.queue_name, message.message_id, message.encode(), eta),
        )
        self.emit_after("enqueue", message, delay)
        return message

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        return _LeasingConsumer(self, queue_name, prefetch, timeout)

    def flush(self, queue_name: str) -> None:
        self.connection.execute("DELETE FROM messages WHERE queue = ?", (queue_name,))

    def flush_all(self) -> None:
        self.connection.execute("DELETE FROM messages")

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until no live message is left on the queue (tests and the CLI use this)."""
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while self.pending(queue_name):
            if deadline is not None and time.monotonic() > deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(self.poll_seconds / 2)

    # ---- what the contract tests and the admin pages look at -------------------------------

    def pending(self, queue_name: str) -> int:
        """Messages on the queue not yet acked and not dead (leased ones included)."""
        (count,) = self.connection.execute(
            "SELECT count(*) FROM messages WHERE queue = ? AND dead = 0", (queue_name,)
        ).fetchone()
        return int(count)

    def dead_letters(self, queue_name: str) -> list[Message[Any]]:
        rows = self.connection.execute(
            "SELECT body FROM messages WHERE queue = ? AND dead = 1 ORDER BY id", (queue_name,)
        ).fetchall()
        return [Message.decode(body) for (body,) in rows]

    # ---- used by the consumer ---------------------------------------------------------------

    def _lease(self, queue_name: str, owner: str) -> tuple[int, bytes] | None:
        """Take the oldest deliverable message: not dead, due, and not leased (or lease run out)."""
        now = current_millis()
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            row = connection.execute(
                "SELECT id, body FROM messages WHERE queue = ? AND dead = 0 AND eta <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY eta, id LIMIT 1",
                (queue_name, now, now),
            ).fetchone()
            if row is not None:
                connection.execute(
                    "UPDATE messages SET lease_until = ?, lease_owner = ?,"
                    " deliveries = deliveries + 1 WHERE id = ?",
                    (now + self.lease_ms, owner, row[0]),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return (row[0], row[1]) if row else None

    def _renew(self, ids: Iterable[int], owner: str) -> None:
        until = current_millis() + self.lease_ms
        self.connection.executemany(
            "UPDATE messages SET lease_until = ? WHERE id = ? AND lease_owner = ?",
            [(until, row_id, owner) for row_id in ids],
        )

    def _finish(self, row_id: int, owner: str, *, dead: bool) -> None:
        if dead:
            self.connection.execute(
                "UPDATE messages SET dead = 1, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (row_id, owner),
            )
        else:
            self.connection.execute(
                "DELETE FROM messages WHERE id = ? AND lease_owner = ?", (row_id, owner)
            )

    def _release(self, ids: Iterable[int], owner: str) -> None:
        self.connection.executemany(
            "UPDATE messages SET lease_until = NULL, lease_owner = NULL"
            " WHERE id = ? AND lease_owner = ?",
            [(row_id, owner) for row_id in ids],
        )


class _Delivery(MessageProxy):
    def __init__(self, message: Message[Any], row_id: int) -> None:
        super().__init__(message)
        self.row_id = row_id


class _LeasingConsumer(Consumer):
    """Hands out up to `prefetch` leased messages and keeps their leases alive until they are
    acked or nacked; a background thread renews them every third of the lease."""

    def __init__(self, broker: SQLiteBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = max(1, prefetch)
        self.timeout_seconds = timeout / 1000
        # Unique per consumer: a lease that ran out and went to someone else is no longer ours,
        # and our late ack must not delete their delivery.
        self.owner = uuid.uuid4().hex
        self.in_flight: set[int] = set()
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.renewer = threading.Thread(
            target=self._renew_leases, name=f"lease-renewer-{queue_name}", daemon=True
        )
        self.renewer.start()

    def __next__(self) -> MessageProxy | None:
        deadline = time.monotonic() + self.timeout_seconds
        while not self.closed.is_set():
            with self.lock:
                room = len(self.in_flight) < self.prefetch
            if room:
                leased = self.broker._lease(self.queue_name, self.owner)
                if leased is not None:
                    row_id, body = leased
                    with self.lock:
                        self.in_flight.add(row_id)
                    return _Delivery(Message.decode(body), row_id)
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.broker.poll_seconds)
        return None

    def ack(self, message: MessageProxy) -> None:
        self._done(message, dead=False)

    def nack(self, message: MessageProxy) -> None:
        self._done(message, dead=True)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        ids = [message.row_id for message in messages if isinstance(message, _Delivery)]
        self.broker._release(ids, self.owner)
        with self.lock:
            self.in_flight.difference_update(ids)

    def close(self) -> None:
        self.closed.set()

    def _done(self, message: MessageProxy, *, dead: bool) -> None:
        assert isinstance(message, _Delivery)
        self.broker._finish(message.row_id, self.owner, dead=dead)
        with self.lock:
            self.in_flight.discard(message.row_id)

    def _renew_leases(self) -> None:
        interval = self.broker.lease_ms / 3000
        while not self.closed.wait(interval):
            with self.lock:
                ids = list(self.in_flight)
            if ids:
                self.broker._renew(ids, self.owner)
